"""The CLI is the top of the house: nothing imports it, and the operations under it know no terminal.

Read from the source with ``ast`` (nothing is imported), so a lazy import inside a function
counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# folder -> the import name it becomes (pyproject.toml's package-dir); others keep their name
PACKAGES = {"engine": "vecmig", "providers": "vecmig.providers", "state": "vecmig.state"}


def module_name(path: Path) -> str:
    folder = path.relative_to(ROOT).parts[0]
    rel = path.relative_to(ROOT / folder).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join([PACKAGES.get(folder, folder), *parts])


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, names from ``from X import name`` included as ``X.name``."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def test_nothing_imports_the_cli() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in sources("engine", "providers", "state", "bench", "tests")
                 if p != ROOT / "engine" / "cli.py" and "vecmig.cli" in imported(p)]
    assert offenders == [], f"import the operations (vecmig.operations), not the CLI: {offenders}"


def test_operations_know_no_terminal() -> None:
    """Operations talk to people only through their Ui: no typer, no rich console, no progress bar."""
    banned = ("vecmig.cli", "typer", "rich", "vecmig.progress")
    found = {str(p.relative_to(ROOT)): sorted(n for n in imported(p) if n.split(".")[0] in ("typer", "rich")
                                              or n.startswith(banned))
             for p in [*sources("engine/operations"), ROOT / "engine" / "quickstart.py"]}
    assert {k: v for k, v in found.items() if v} == {}


def test_the_scan_sees_imports() -> None:
    """The check above can fail: it finds the CLI's own imports of the operations."""
    cli = imported(ROOT / "engine" / "cli.py")
    assert "vecmig.operations.apply" in cli and "typer" in cli
