"""Discovery of the stores under test and the session's one instance of each.

Every module in ``tests/contract/stores/`` (but ``__init__``) is a store; each case of
``test_contract.py`` that takes ``store`` runs once per store, its test id naming the store.
A case may declare what it needs (``needs("sparse")``: ``Capabilities.sparse`` true;
``needs("sparse", False)``: false) and then runs only for stores whose provider class says so.
``under_test`` runs once per session per store (a store whose server cannot start errors its
cases: never a skip), ``stop`` when the session ends. Tier: a module's ``TIER`` (memory:
``unit``), else ``integration`` (a real store in-process).
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.contract.harness import Store
from vecmig.providers import provider_class

STORES = Path(__file__).parent / "stores"
F = TypeVar("F", bound=Callable[..., Any])
_seen: dict[str, Store] = {}
_failed: dict[str, str] = {}


def store_names() -> list[str]:
    return sorted(p.stem for p in STORES.glob("*.py") if not p.stem.startswith("_"))


def module_of(name: str) -> Any:
    return importlib.import_module(f"tests.contract.stores.{name}")


def needs(capability: str, value: bool = True) -> Callable[[F], F]:
    """Run the case only for stores whose Capabilities declare ``capability`` as ``value``."""
    def mark(fn: F) -> F:
        fn.contract_needs = (capability, value)  # type: ignore[attr-defined]
        return fn
    return mark


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store" not in metafunc.fixturenames:
        return
    need = getattr(metafunc.function, "contract_needs", None)
    params = []
    for name in store_names():
        # A module or provider that cannot even be imported (a client missing) must not take the
        # other stores' cases down with it at collection: its own cases fail at set-up instead.
        try:
            tier = getattr(module_of(name), "TIER", "integration")
            if need and bool(getattr(provider_class(name).capabilities, need[0])) != need[1]:
                continue
        except Exception:
            tier = "integration"
        params.append(pytest.param(name, id=name, marks=getattr(pytest.mark, tier)))
    metafunc.parametrize("store", params, indirect=True, scope="session")


@pytest.fixture(scope="session")
def store(request: pytest.FixtureRequest) -> Store:
    """The store for this param, made on first use and kept to the end of the session: pytest
    finishes a session fixture's previous param when the next one is asked for, and a server the
    rest of the session shares (the embedded PostgreSQL behind ``pg``) must not restart for it."""
    name: str = request.param
    if name in _failed:  # its cases fail alike, without starting it again for each
        pytest.fail(f"tests/contract/stores/{name}.py: under_test failed: {_failed[name]}", pytrace=False)
    found = _seen.get(name)
    if found is None:
        tmp = Path(tempfile.mkdtemp(prefix=f"vecmig-contract-{name}-"))
        try:
            sut = module_of(name).under_test(tmp)
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            _failed[name] = f"{type(exc).__name__}: {exc}"
            raise
        assert sut.provider == name, f"tests/contract/stores/{name}.py returns a store for provider {sut.provider!r}"
        found = _seen[name] = Store(sut, tmp)
    return found


def pytest_sessionfinish(session: pytest.Session) -> None:
    for found in _seen.values():
        try:
            found.sut.stop()
        finally:
            shutil.rmtree(found.tmp, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    notes = [(name, note) for name, found in sorted(_seen.items()) for note in found.left_out]
    if notes:
        terminalreporter.section("contract: cases left out, as the stores declare")
        for name, note in notes:
            terminalreporter.write_line(f"{name}: {note}")
