"""Which vector index a target gets: the spec's, else the source's carried over.

A source reports its index in ``Inventory.index`` in one engine-neutral shape, whatever the
store calls things (each provider translates in its own folder)::

    {"type": "hnsw", "m": 16, "ef_construction": 64, "ef_search": 40}
    {"type": "ivfflat", "lists": 100, "probes": 1}
    {"type": "flat"}       # every record scored: as good as no index for carrying over
    {"type": "managed"}    # the store tunes it itself (a managed service): no parameters to carry
    None                   # no vector index

Other types keep the store's own name in lowercase (``ivf_pq``): they get the nearest type the
target can build. Keys a store adds beside these (``name``, ``opclass``, ``params``) are its own.

:func:`resolve` decides, once, for both the plan's ``build_index`` action (its params hold the
result, so apply never looks again) and the plan's findings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vecmig.model import Inventory, Warning_
from vecmig.spec import IndexSpec, Spec

if TYPE_CHECKING:
    from vecmig.providers.base import Provider

# Lint codes (documented in README.md's lint policy).
NO_INDEX = "VM146"  # warning: the target will have no vector index
NEAREST = "VM147"  # warning: the target's store cannot build the source's index type
READER_SETTINGS = "VM148"  # info: query-time settings readers of the target must set themselves
STORE_DEFAULT = "VM149"  # info: a managed source index (no parameters): the target store's default

# Where a spec asks for an index (the hint of every finding that says "ask for one").
ASK = "set target.create.index (e.g. `index: {type: hnsw, m: 16, ef_construction: 64}`)"


@dataclass(frozen=True)
class Decision:
    """The index ``build_index`` builds (None: none is built) and what the plan says about it."""

    index: IndexSpec | None
    findings: tuple[Warning_, ...] = ()


def describe(index: dict[str, Any] | None) -> str:
    """An inventory's index in a few words: ``hnsw (m 16, ef_construction 64, ef_search 40)``."""
    if not index or not index.get("type"):
        return "no vector index"
    kind = str(index["type"])
    if kind == "managed":
        return "a managed index (no parameters)"
    if kind == "flat":
        return "a flat index (exhaustive search)"
    params = [f"{k} {index[k]}" for k in ("m", "ef_construction", "ef_search", "lists", "probes")
              if index.get(k) is not None]
    return f"{kind} ({', '.join(params)})" if params else kind


def spec_words(index: IndexSpec) -> str:
    if index.type == "none":
        return "no vector index"
    return describe(neutral(index))


def neutral(index: IndexSpec) -> dict[str, Any] | None:
    """``index`` in the inventory's neutral shape (None for ``type: none``)."""
    if index.type == "none":
        return None
    if index.type == "hnsw":
        out: dict[str, Any] = {"type": "hnsw", "m": index.m, "ef_construction": index.ef_construction}
        if index.ef_search is not None:
            out["ef_search"] = index.ef_search
        return out
    out = {"type": "ivfflat", "lists": index.lists}
    if index.probes is not None:
        out["probes"] = index.probes
    return out


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def from_inventory(index: dict[str, Any], kind: str) -> IndexSpec:
    """A reported index as an :class:`IndexSpec` of type ``kind`` (hnsw or ivfflat): the
    parameters it reports, the defaults where it reports none."""
    d = IndexSpec()
    if kind == "hnsw":
        return IndexSpec(type="hnsw", m=_int(index.get("m")) or d.m,
                         ef_construction=_int(index.get("ef_construction")) or d.ef_construction,
                         ef_search=_int(index.get("ef_search")))
    return IndexSpec(type="ivfflat", lists=_int(index.get("lists")) or d.lists, probes=_int(index.get("probes")))


def nearest(kind: str, can: tuple[str, ...]) -> str | None:
    """The type among ``can`` closest to ``kind``: partitioned (ivf*) to ivfflat, graphs to hnsw."""
    order = ("ivfflat", "hnsw") if kind.startswith("ivf") and "hnsw" not in kind else ("hnsw", "ivfflat")
    return next((k for k in order if k in can), None)


def resolve(spec: Spec, source: Inventory, target: Inventory, target_cls: type[Provider],
            target_owned: bool = False) -> Decision:
    """The target's index and the plan's findings about it.

    The spec's ``create.index`` wins; without it a target vecmig creates (or created) gets
    the source's index, or the nearest its store builds; an existing target vecmig did not
    create keeps what it has."""
    create = spec.target.create
    can = target_cls.capabilities.indexes
    own = target_cls.own_index
    src = source.index if source.index and source.index.get("type") else None
    had = describe(src)
    tgt = spec.target.label
    if create is not None and create.index is not None:
        if create.index.type == "none" or not can:
            return Decision(None, _none(tgt, f"target.create.index.type is none (the source has {had})",
                                        "set target.create.index.type to hnsw or ivfflat to build one", own))
        return Decision(create.index, _readers(target_cls, create.index))
    if not can:
        if own is not None:
            return Decision(None, _own_store(spec, tgt, src, own))
        if src is None or src.get("type") == "flat":
            return Decision(None)  # nothing to lose, and nothing a spec could ask of this store
        return Decision(None, _none(tgt, f"{spec.target.provider} builds none (the source has {had})",
                                    f"if searches must be fast, choose a target store that indexes ({_indexing()})",
                                    None))
    if target.exists and not target_owned:
        if (target.index and target.index.get("type")) or own:
            return Decision(None)
        return Decision(None, _none(tgt, f"it exists without one and the spec asks for none (the source has {had})",
                                    ASK, own))
    if src is None or src["type"] == "flat":
        return Decision(None, _none(tgt, f"the source has {had}, and target.create.index is not set", ASK, None))
    kind = str(src["type"])
    if kind == "managed":
        index = IndexSpec(type="hnsw" if "hnsw" in can else "ivfflat")
        return Decision(index, (Warning_(
            STORE_DEFAULT, f"the source has {had}: the target {tgt} gets {spec.target.provider}'s default, "
                           f"{spec_words(index)}", "info", f"to choose its parameters, {ASK}"),
            *_readers(target_cls, index)))
    if kind in can:
        index = from_inventory(src, kind)
        return Decision(index, _readers(target_cls, index))
    near = nearest(kind, can)
    assert near is not None  # can is not empty
    index = from_inventory(src, near)
    return Decision(index, (Warning_(
        NEAREST, f"{spec.target.provider} cannot build the source's {had}: the target {tgt} gets the nearest it "
                 f"has, {spec_words(index)}", "warning", f"to choose another, {ASK}"),
        *_readers(target_cls, index)))


def _indexing() -> str:
    from vecmig.providers import kits  # their light kits, not the provider classes

    return ", ".join(sorted(name for name, rules in kits().items() if rules.indexes))


def _none(tgt: str, why: str, hint: str, own: dict[str, Any] | None) -> tuple[Warning_, ...]:
    if own is not None:
        return ()  # the store indexes every collection itself
    return (Warning_(NO_INDEX, f"the target {tgt} will have no vector index: {why}; every search scans "
                               "all records", "warning", hint),)


def _own_store(spec: Spec, tgt: str, src: dict[str, Any] | None, own: dict[str, Any]) -> tuple[Warning_, ...]:
    """A store that indexes every collection itself, with its own parameters (Provider.own_index)."""
    if src is None or src.get("type") in ("flat", "managed"):
        return ()
    if all(src.get(k) == own.get(k) for k in ("type", "m", "ef_construction", "lists")):
        return ()
    return (Warning_(NEAREST, f"{spec.target.provider} indexes every collection itself: the target {tgt} gets "
                              f"{describe(own)}, not the source's {describe(src)}", "warning",
                     f"tune the index in {spec.target.provider} after the migration if recall differs"),)


def _readers(target_cls: type[Provider], index: IndexSpec) -> tuple[Warning_, ...]:
    said = target_cls.reader_settings(index)
    return (Warning_(READER_SETTINGS, said, "info"),) if said else ()
