"""Stage 4 for ``validate.queries``: what the schema cannot say about the query-parity gate.

Queries come from somewhere (``sample`` and/or ``file``); the query file exists, is a regular
file and every line parses (an error names the file's line and the spec key); filters are of
the filter language and read no field the mapping drops (the target would hold no such field,
so the gate would compare a filtered source with an empty target); a namespace mapping other
than the identity is refused for now, since source and target would answer from differently
keyed records and the gate would compare the wrong things.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from vecmig import safe_paths
from vecmig.errors import SpecError
from vecmig.filters import FilterError, check, fields
from vecmig.quality.queries import load_queries
from vecmig.spec import QueriesSpec
from vecmig.specload.assembly import _namespace_mapping, _queries
from vecmig.specload.context import _Context

AT = "/validate/queries"
THRESHOLDS = ("min_overlap", "min_recall", "max_recall_drop", "max_latency_ratio", "max_score_diff", "max_error_rate")


def _check_queries(ctx: _Context, spec: dict[str, Any], base_dir: Path) -> None:
    data = (spec.get("validate") or {}).get("queries")
    if data is None:
        return
    if "sample" not in data and "file" not in data:
        raise ctx.error("validate.queries needs queries to send: `sample: N` (source records' vectors) and/or "
                        "`file: queries.jsonl`", AT, "add e.g. `sample: 200`")
    namespace = (spec.get("mapping") or {}).get("namespace")
    if namespace is not None and not _namespace_mapping(namespace).is_identity:
        raise ctx.error("validate.queries is not supported yet with a namespace mapping that moves records "
                        "(mapping.namespace): source and target would answer from differently keyed records",
                        AT, "remove validate.queries, or migrate without mapping.namespace")
    for key in THRESHOLDS:
        value = data.get(key)
        if isinstance(value, float) and math.isnan(value):
            # NaN passes the schema's bounds (every comparison with it is false), and then every
            # "measure < threshold" was false too: the threshold was silently never gated.
            raise ctx.error(f"validate.queries.{key} is .nan, which no measure can miss: the gate would never "
                            "check it", f"{AT}/{key}", f"set a number, or remove {key} to keep its default")
    dropped = set(((spec.get("mapping") or {}).get("metadata") or {}).get("drop") or [])
    if "filter" in data:
        try:
            check(data["filter"])
        except FilterError as e:
            raise ctx.error(f"validate.queries.filter: {e}", f"{AT}/filter",
                            "see the filter language in the README (Queries)") from None
        gone = sorted(fields(data["filter"]) & dropped)
        if gone:
            raise ctx.error(f"validate.queries.filter reads field '{gone[0]}', which mapping.metadata.drop removes "
                            "from the target", f"{AT}/filter",
                            f"filter on a field the target keeps, or keep '{gone[0]}'")
    q = _queries(data, base_dir)
    if q.path is not None:
        _check_file(ctx, q, dropped)


def _check_file(ctx: _Context, q: QueriesSpec, dropped: set[str]) -> None:
    assert q.path is not None
    at = f"{AT}/file"
    shown = str(ctx.public_value(at))
    problem = safe_paths.file_problem(q.path, must_exist=True)
    if problem is not None:
        raise ctx.error(f"query file {ctx.quoted(at)} ({q.path}) {problem}", at,
                        "point validate.queries.file at a JSON Lines file of queries (relative to the spec file)")
    try:
        queries = load_queries(q.path, shown=shown, default_k=q.k, dimension=None, default_filter=q.filter)
    except SpecError as e:
        raise SpecError(e.message, where=ctx.locations.where(at), hint=e.hint) from None
    for query in queries:
        gone = sorted(fields(query.filter or {}) & dropped)
        if gone:
            which = (f"{query.name}: the query" if query.name.startswith(f"{shown}:")
                     else f"{shown}: query {query.name}")
            raise ctx.error(f"{which} filters on field '{gone[0]}', which mapping.metadata.drop removes from the "
                            "target", at,
                            f"filter on a field the target keeps, or keep '{gone[0]}'")
