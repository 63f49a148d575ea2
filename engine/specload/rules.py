"""Stage 4: the rules beyond the schema, run once the schema passes.

Stores (:mod:`vecmig.specload.store_rules`), then the strategy, alias, source and target
being different stores, the files a spec names, the policy, the live pointer, and keys
that would be ignored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vecmig import safe_paths
from vecmig.spec import IMPLEMENTED_STRATEGIES, StrategySpec
from vecmig.specload.context import _Context, _unescape
from vecmig.specload.embed_rules import check_embed
from vecmig.specload.executor_rules import check_executor
from vecmig.specload.namespace_rules import _check_namespace_mapping
from vecmig.specload.query_rules import _check_queries
from vecmig.specload.retrieval_rules import check_retrieval
from vecmig.specload.run_rules import check_runs
from vecmig.specload.store_rules import _check_honoured, _check_store, _rules
from vecmig.specload.wave_rules import _check_waves


def _check_rules(ctx: _Context, spec: dict[str, Any], base_dir: Path) -> None:
    for role in ("source", "target"):
        _check_store(ctx, spec[role], f"/{role}")
    _check_strategy(ctx, spec)
    check_embed(ctx, spec)  # before the strategies' own rules: a re-embed refuses some outright
    _check_waves(ctx, spec)
    check_runs(ctx, spec)
    _check_alias(ctx, spec)
    _check_not_same(ctx, spec, base_dir)
    _check_paths(ctx, spec, base_dir)
    _check_policy(ctx, spec, base_dir)
    _check_pointer(ctx, spec)
    _check_honoured(ctx, spec)
    _check_namespace_mapping(ctx, spec)
    _check_queries(ctx, spec, base_dir)
    check_retrieval(ctx, spec, base_dir)
    check_executor(ctx, spec)


def _spec_path(value: str, base_dir: Path) -> Path:
    p = Path(value).expanduser()
    return Path(os.path.normpath(p if p.is_absolute() else base_dir / p))


def _check_paths(ctx: _Context, spec: dict[str, Any], base_dir: Path) -> None:
    """Every file a spec names must be a regular file or absent (safe_paths): refused here, before
    anything is read, planned or written, with the key that names it."""
    files: list[tuple[str, str, str, bool]] = []  # (pointer, what, kind, must exist)
    for role in ("source", "target"):
        conn = spec[role].get("connection") or {}
        rule = _rules(spec[role]["provider"])
        for key, (kind, what) in (rule.paths if rule is not None else {}).items():
            if isinstance(conn.get(key), str):
                files.append((f"/{role}/connection/{key}", what.format(role=role), kind, False))
    pointer = spec["target"].get("pointer") or {}
    if isinstance(pointer.get("file"), str):
        files.append(("/target/pointer/file", "pointer file", "file", False))
    waves = (spec.get("strategy") or {}).get("waves")
    for i, wave in enumerate(waves if isinstance(waves, list) else []):
        if isinstance((wave.get("pointer") or {}).get("file"), str):
            files.append((f"/strategy/waves/{i}/pointer/file", "pointer file", "file", False))
    state = spec.get("state") or {}
    if isinstance(state.get("path"), str) and "url" not in state:
        files.append(("/state/path", "state file", "file", False))
    policy = spec.get("policy") or {}
    if isinstance(policy.get("file"), str):
        files.append(("/policy/file", "policy file", "file", True))
    for at, what, want, must_exist in files:
        full = _spec_path(_resolved_value(spec, at), base_dir)
        if want == "dir":
            problem = safe_paths.dir_problem(full)
            hint = f"point {at[1:].replace('/', '.')} at a directory (or a path that does not exist yet)"
        else:
            problem = safe_paths.file_problem(full, must_exist=must_exist)
            hint = (f"point {at[1:].replace('/', '.')} at a regular file (or a path that does not exist yet); "
                    f"{safe_paths.REGULAR_ONLY}")
        if problem is None or problem == "does not exist":
            continue  # a missing policy file gets its own message below
        raise ctx.error(f"{what} {ctx.quoted(at)} ({full}) {problem}", at, hint)


def _resolved_value(spec: dict[str, Any], at: str) -> str:
    """The resolved value at a JSON pointer of the resolved spec."""
    value: Any = spec
    for token in at.split("/")[1:]:
        value = value[int(token)] if isinstance(value, list) else value[_unescape(token)]
    return str(value)


def _check_strategy(ctx: _Context, spec: dict[str, Any]) -> None:
    strategy = spec.get("strategy", {})
    kind = strategy.get("type", StrategySpec.type)
    if kind not in IMPLEMENTED_STRATEGIES:
        raise ctx.error(
            f"strategy '{kind}' is not implemented yet",
            "/strategy/type",
            f"use {' or '.join(IMPLEMENTED_STRATEGIES)}",
        )
    if kind == "blue-green" and "alias" not in spec["target"] and "pointer" not in spec["target"]:
        provider = spec["target"]["provider"]
        rule = _rules(provider)
        if rule is not None and rule.pointer_only:
            raise ctx.error(
                f"blue-green on {provider} needs target.pointer, what readers follow ({provider} has no aliases)",
                "/strategy/type",
                "add `pointer: {file: live-index.json}` and/or `pointer: {command: ./repoint.sh}` under target: "
                "cutover repoints it to the new index, rollback back",
            )
        raise ctx.error(
            "blue-green needs target.alias, the live name readers use",
            "/strategy/type",
            "add `alias: <live name>` under target: cutover swaps that alias to the new collection "
            "(stores without aliases: `pointer: {file: ...}`)",
        )
    for key in ("max_lag", "freeze_writes"):
        if key in strategy and kind not in ("cdc", "parallel-run"):
            raise ctx.error(
                f"strategy.{key} applies only to cdc and parallel-run, not {kind}",
                f"/strategy/{key}",
                f"remove {key}, or use `type: cdc`",
            )
    if strategy.get("decommission") and kind != "blue-green":
        raise ctx.error(
            f"strategy.decommission applies only to blue-green, not {kind}",
            "/strategy/decommission",
            "remove decommission, or use `type: blue-green`",
        )


def _check_alias(ctx: _Context, spec: dict[str, Any]) -> None:
    target = spec["target"]
    if "alias" in target and target["alias"] == target.get("collection"):
        raise ctx.error(
            "target.alias must differ from target.collection",
            "/target/alias",
            "the alias is the stable name readers use; the collection behind it changes",
        )


def _store_identity(store: dict[str, Any], base_dir: Path) -> tuple[Any, ...]:
    # Paths are compared as files, so `out.jsonl` and `./out.jsonl` are the same store.
    conn = {
        k: os.path.normpath(base_dir / os.path.expanduser(v)) if k in ("path", "embedded") else v
        for k, v in store["connection"].items()
    }
    return (store["provider"], sorted(conn.items()), store.get("collection"), store.get("namespace"))


def _check_not_same(ctx: _Context, spec: dict[str, Any], base_dir: Path) -> None:
    if _store_identity(spec["source"], base_dir) != _store_identity(spec["target"], base_dir):
        return
    if ctx.has("/target/collection"):
        what = f"collection {ctx.quoted('/target/collection')}"
    elif ctx.has("/target/connection/path"):
        what = f"file {ctx.quoted('/target/connection/path')}"
    else:
        what = "store"
    raise ctx.error(
        f"source and target are the same {what} on the same connection",
        "/target",
        "point the target at a new collection (or file); a migration cannot copy a collection onto itself",
    )


def _check_policy(ctx: _Context, spec: dict[str, Any], base_dir: Path) -> None:
    """A code listed under two levels is ambiguous; a policy file must exist and be valid."""
    from vecmig.policy import LEVELS, MANDATORY, read_file

    policy = spec.get("policy")
    if not policy:
        return
    seen: dict[str, str] = {}
    for level in LEVELS:
        for i, code in enumerate(policy.get(level, [])):
            if code in seen:
                raise ctx.error(
                    f"lint code {code} is listed under both policy.{seen[code]} and policy.{level}",
                    f"/policy/{level}/{i}",
                    f"keep {code} in one of them",
                )
            seen[code] = level
            if code in MANDATORY and LEVELS[level] != "error":
                raise ctx.error(
                    f"lint code {code} cannot be lowered by policy.{level}: it stops vecmig from destroying a file "
                    "that is not its own",
                    f"/policy/{level}/{i}",
                    f"remove {code} from policy.{level}, and fix its cause instead",
                )
    if "file" in policy:
        path = Path(policy["file"]).expanduser()
        full = path if path.is_absolute() else base_dir / path
        if not os.path.lexists(full):
            raise ctx.error(
                f"policy file not found: {ctx.quoted('/policy/file')} (looked for {full})",
                "/policy/file",
                "the path is relative to the spec file; create it, or remove policy.file",
            )
        read_file(full)  # raises a SpecError naming the file when it is not a valid policy


def _check_pointer(ctx: _Context, spec: dict[str, Any]) -> None:
    """Aliases where the store has them, a pointer (file and/or command) where it does not."""
    target = spec["target"]
    rule = _rules(target["provider"])
    if rule is not None and rule.pointer_only and "alias" in target:
        raise ctx.error(
            f"{target['provider']} has no aliases, so target.alias cannot be switched",
            "/target/alias",
            "replace it with `pointer: {file: live-index.json}` and/or `pointer: {command: ./repoint.sh}`",
        )
    if "alias" in target and "pointer" in target:
        raise ctx.error(
            "target takes either alias or pointer, not both",
            "/target/pointer",
            "stores with aliases (pgvector views) swap the alias; use pointer only for stores without them",
        )
