"""Stage 1, positions: YAML text to plain data, and where every JSON pointer is in the file.

``yaml.compose`` (SafeLoader) gives a node tree with line/column marks. It is walked once to
record the position of every key and list item, to reject duplicate and non-string keys
(PyYAML silently keeps the last duplicate) and recursive or exploding aliases, and only then
is plain Python data constructed. YAML syntax errors are reworded the way a person editing
the file thinks about them.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from vecmig.errors import SpecError
from vecmig.specload.context import Pos, _escape, _in

STR_TAG = "tag:yaml.org,2002:str"
MERGE_TAG = "tag:yaml.org,2002:merge"
# A spec is a few dozen nodes; this only stops alias bombs ("billion laughs") early.
MAX_NODES = 50_000


def _parse_yaml(text: str, file: str) -> tuple[Any, dict[str, Pos]]:
    """Parse one YAML document; return the plain data and pointer -> (line, col) of each key."""
    loader = None
    root = None
    try:
        # Inside the try: the reader checks the first characters already (a control
        # character or a lone surrogate near the start raises here).
        loader = yaml.SafeLoader(text)
        root = loader.get_single_node()
        if root is None:
            raise SpecError(
                "spec file is empty",
                where=f"{file}:1:1: /",
                hint="start with `version: 1`, `name: ...`, `source:` and `target:` (see plans/)",
            )
        positions: dict[str, Pos] = {"": _mark_pos(root.start_mark)}
        _NodeWalker(file, positions).walk(root, "", frozenset())
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, file) from None
    except yaml.reader.ReaderError as exc:  # unmarked: a control character, a lone surrogate
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise SpecError(
            f"not valid YAML: character U+{ord(char):04X} is not allowed in YAML text",
            where=f"{file}:{line}:{col}",
            hint="remove it, or write it as an escape inside a double-quoted string",
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"not valid YAML: {str(exc).splitlines()[0]}", where=f"{file}:1:1",
                        hint="fix the YAML syntax") from None
    except RecursionError:
        raise SpecError(
            "spec is nested too deeply", where=f"{file}:1:1", hint="a spec needs a few levels at most"
        ) from None
    except (ValueError, TypeError, OverflowError) as exc:  # a scalar its tag cannot read: `!!int x`
        line, col = _unreadable_scalar(root) if root is not None else (1, 1)
        raise SpecError(
            f"a value cannot be read as its YAML type says ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})",
            where=f"{file}:{line}:{col}",
            hint="remove the explicit tag (`!!int`, `!!float`, ...) or fix the value",
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, positions


def _unreadable_scalar(root: Node) -> Pos:
    """Where the first scalar is that the safe constructor refuses (1:1 if none is found)."""
    probe = yaml.SafeLoader("")
    try:
        stack = [root]
        while stack:
            node = stack.pop()
            if isinstance(node, yaml.ScalarNode):
                try:
                    probe.construct_object(node, deep=True)
                except (ValueError, TypeError, OverflowError, yaml.YAMLError):
                    return _mark_pos(node.start_mark)
            elif isinstance(node, yaml.SequenceNode):
                stack.extend(reversed(node.value))
            elif isinstance(node, yaml.MappingNode):
                stack.extend(n for pair in reversed(node.value) for n in reversed(pair))
    finally:
        probe.dispose()
    return 1, 1


def _mark_pos(mark: yaml.Mark) -> Pos:
    return mark.line + 1, mark.column + 1  # PyYAML marks are 0-based; editors count from 1


class _NodeWalker:
    """Records key positions; rejects duplicate keys, non-string keys and recursive aliases."""

    def __init__(self, file: str, positions: dict[str, Pos]) -> None:
        self.file = file
        self.positions = positions
        self.visited = 0

    def error(self, message: str, node: Node, pointer: str, hint: str, at_key: bool = False) -> SpecError:
        # at_key: an alias node's own mark is its anchor's, elsewhere in the file.
        line, col = self.positions[pointer] if at_key else _mark_pos(node.start_mark)
        return SpecError(message, where=f"{self.file}:{line}:{col}: {pointer or '/'}", hint=hint)

    def walk(self, node: Node, pointer: str, ancestors: frozenset[int]) -> None:
        self.visited += 1
        if self.visited > MAX_NODES:
            raise self.error(
                "spec expands to too many values (aliases nested in aliases?)",
                node,
                pointer,
                "write the spec out without nested anchors and aliases",
            )
        if id(node) in ancestors:
            raise self.error(
                f"recursive alias at {pointer or '/'}",
                node,
                pointer,
                "an alias must not contain itself",
                at_key=True,
            )
        inner = ancestors | {id(node)}
        if isinstance(node, MappingNode):
            self.walk_mapping(node, pointer, inner)
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                child = f"{pointer}/{i}"
                self.positions[child] = _mark_pos(item.start_mark)
                self.walk(item, child, inner)

    def walk_mapping(self, node: MappingNode, pointer: str, ancestors: frozenset[int]) -> None:
        # Merged keys (`<<: *defaults`) first, so explicit keys overriding them win the position.
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                for merged in _merge_sources(value_node):
                    self.walk_mapping(merged, pointer, ancestors)
        seen: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.key_text(key_node, pointer)
            child = f"{pointer}/{_escape(key)}"
            if key in seen:
                first_line = seen[key].start_mark.line + 1
                raise self.error(
                    f"duplicate key '{key}' {_in(pointer)}",
                    key_node,
                    child,
                    f"'{key}' is already set on line {first_line}; keep one of them",
                )
            seen[key] = key_node
            self.positions[child] = _mark_pos(key_node.start_mark)
            self.walk(value_node, child, ancestors)

    def key_text(self, key_node: Node, pointer: str) -> str:
        if isinstance(key_node, ScalarNode) and key_node.tag == STR_TAG:
            return str(key_node.value)
        if isinstance(key_node, ScalarNode):
            # YAML 1.1 reads `on:`, `yes:`, `1:` as booleans / numbers, not names.
            tag = key_node.tag.rsplit(":", 1)[-1]
            kind = {"bool": "true/false", "int": "a number", "float": "a number", "null": "empty"}.get(tag, tag)
            raise self.error(
                f"key '{key_node.value}' {_in(pointer)} is read as {kind}, not a name",
                key_node,
                pointer,
                f"quote it: '\"{key_node.value}\": ...'",
            )
        raise self.error(
            f"a key {_in(pointer)} is a list or mapping, not a name",
            key_node,
            pointer,
            "keys are plain names such as `collection`",
        )


def _merge_sources(node: Node) -> list[MappingNode]:
    if isinstance(node, MappingNode):
        return [node]
    if isinstance(node, SequenceNode):
        return [n for n in node.value if isinstance(n, MappingNode)]
    return []  # invalid merge value: the constructor reports it with its own mark


# PyYAML's parser vocabulary, said the way a person editing the file thinks about it.
FRIENDLY_YAML = (
    ("expected <block end>", "this line's indentation does not match the lines above it"),
    ("found another document", "a second YAML document starts here"),
    (
        "mapping values are not allowed here",
        "unexpected ':', from a key indented too far or an unquoted ': ' in a value",
    ),
)


def _yaml_error(exc: yaml.MarkedYAMLError, file: str) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    line, col = _mark_pos(mark) if mark else (1, 1)
    problem = exc.problem or exc.context or "invalid YAML"
    friendly = next((text for marker, text in FRIENDLY_YAML if marker in problem), None)
    details = [problem] if friendly else []
    if exc.context and exc.problem:
        at = exc.context_mark
        same_line = at is None or (mark is not None and at.line == mark.line)
        details.append(exc.context if at is None or same_line else f"{exc.context} on line {at.line + 1}")
    message = f"YAML syntax error: {friendly or problem}"
    if details:
        message += f" ({'; '.join(details)})"
    return SpecError(message, where=f"{file}:{line}:{col}", hint=_yaml_hint(exc))


# YAML reads `key: value` only when the key is at most this long; longer keys need `? key`.
IMPLICIT_KEY_LIMIT = 1024


def _long_key_before(mark: yaml.Mark | None) -> bool:
    """Whether the ':' at ``mark`` ends a key longer than YAML lets a plain `key:` be."""
    if mark is None or not isinstance(mark.buffer, str):
        return False
    line = mark.buffer[: mark.pointer].rsplit("\n", 1)[-1]
    key = line.rsplit("{", 1)[-1].rsplit(",", 1)[-1].strip().lstrip("- ")
    return len(key) > IMPLICIT_KEY_LIMIT


def _yaml_hint(exc: yaml.MarkedYAMLError) -> str:
    problem = f"{exc.context or ''} {exc.problem or ''}"
    if _long_key_before(exc.problem_mark):
        return (
            f"a key longer than {IMPLICIT_KEY_LIMIT} characters must be written as an explicit key: "
            "'? <key>' on one line, ': <value>' on the next"
        )
    if "'\\t'" in problem or "tab" in problem:
        return "indent with spaces, not tabs"
    if "flow sequence" in problem or "flow mapping" in problem:
        opened = f" on line {exc.context_mark.line + 1}" if exc.context_mark else ""
        return f"close the bracket opened{opened}, and separate items with commas"
    if "expected a single document" in problem:
        return "a spec file holds one YAML document; remove the extra '---'"
    if "constructor for the tag" in problem:
        return "YAML tags are not supported; read values from the environment with ${env:NAME}"
    if "found undefined alias" in problem:
        return "define the anchor (&name) before using the alias (*name)"
    if "quoted scalar" in problem:
        return "close the quote"
    if "mapping values are not allowed" in problem or "block end" in problem or "indent" in problem:
        return "check the indentation: keys of one mapping line up, nested keys go two spaces further in"
    return "fix the YAML syntax at this position"
