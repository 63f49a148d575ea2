"""What the Pinecone modules share: names, limits, namespaces, the small helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from vecmig.errors import TerminalError
from vecmig.providers.pinecone import lint
from vecmig.records import RecordId
from vecmig.state.redact import Redactor

T = TypeVar("T")

ALL_NAMESPACES = "*"
DEFAULT_NAMESPACE = ""
DEFAULT_NAMESPACE_ALIAS = "__default__"
DEFAULT_CONCURRENCY = 4
LIST_LIMIT = 100  # ids per list page: the API's maximum
SAMPLE_SIZE = 100  # records fetched by inventory() to type the metadata
DENSE_FIELD = "_values"  # the schema field names the vectors API addresses
SPARSE_FIELD = "_sparse_values"
METRICS = ("cosine", "euclidean", "dotproduct")
MAX_INDEX_NAME = 45


@dataclass
class UpsertStats:
    """What upsert sent (for benchmarks and tests): requests acknowledged and their sizes."""

    requests: int = 0
    records: int = 0
    max_request_bytes: int = 0
    max_request_records: int = 0
    splits: int = 0


class _Oversize(Exception):
    """The server refused a request for its size: split it (not a retry of the same bytes)."""


class _StaleToken(Exception):
    """A pagination token from a saved cursor was refused (expired or foreign)."""


# ---- helpers ----------------------------------------------------------------------------------


def canonical_namespace(name: Any) -> str:
    """The default namespace is "" (the API spells it "" or "__default__"); None means it too."""
    if name is None or name == DEFAULT_NAMESPACE_ALIAS:
        return DEFAULT_NAMESPACE
    return str(name)


def _valid_index_name(name: str) -> bool:
    ok = set("abcdefghijklmnopqrstuvwxyz0123456789-")
    return bool(name) and set(name) <= ok and name[0] != "-" and name[-1] != "-"


def _opt_str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _scrubbed(exc: BaseException, secrets: tuple[str, ...]) -> str:
    return Redactor(secrets)(" ".join(str(getattr(exc, "message", exc)).split()))


def _rejected(rid: RecordId, finding: lint.Finding) -> TerminalError:
    return TerminalError(f"record {rid!r} cannot be written to Pinecone: {finding.message} [{finding.code}]",
                         hint=finding.hint)


def _raise_first(rid: RecordId, findings: list[lint.Finding]) -> None:
    problem = lint.first_error(findings)
    if problem is not None:
        raise _rejected(rid, problem)


def _last_wins(items: list[dict[str, Any]], sizes: list[int]) -> tuple[list[dict[str, Any]], list[int]]:
    """One record per id, the last one: concurrent requests must not race on a duplicate id."""
    last = {item["id"]: pos for pos, item in enumerate(items)}
    if len(last) == len(items):
        return items, sizes
    keep = sorted(last.values())
    return [items[p] for p in keep], [sizes[p] for p in keep]


def _metadata_types(metadata: list[dict[str, Any]]) -> dict[str, str]:
    """Logical types of sampled metadata. Numbers are "float": Pinecone keeps only doubles."""
    kinds: dict[str, set[str]] = {}
    for meta in metadata:
        for key, value in meta.items():
            kind = ("bool" if isinstance(value, bool) else "float" if isinstance(value, int | float)
                    else "text" if isinstance(value, str) else "text[]" if isinstance(value, list) else "json")
            kinds.setdefault(key, set()).add(kind)
    return {k: (next(iter(v)) if len(v) == 1 else "json") for k, v in sorted(kinds.items())}
