"""Stage 4 for ``validate.retrieval``: what the schema cannot say about the retrieval check.

The evaluation file exists and is a regular file, and every line parses (an error names the
file's line and the key: ``relevant`` non-empty, grades and vectors finite, k ≥ 1, filters of the
filter language reading no field the mapping drops); a NaN threshold is refused (it passes the
schema's bounds, and then no measure could miss it); a namespace mapping that moves records is
refused, as for ``validate.queries``: source and target would answer from differently keyed
records. The thresholds are the new model's: ``min_*`` on its measures, ``max_*_drop`` on the
old model's minus its.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from vecmig import safe_paths
from vecmig.errors import SpecError
from vecmig.filters import fields
from vecmig.quality.evalset import load_eval
from vecmig.specload.assembly import _namespace_mapping, _retrieval
from vecmig.specload.context import _Context

AT = "/validate/retrieval"
THRESHOLDS = ("min_recall", "min_ndcg", "max_recall_drop", "max_ndcg_drop")


def check_retrieval(ctx: _Context, spec: dict[str, Any], base_dir: Path) -> None:
    data = (spec.get("validate") or {}).get("retrieval")
    if data is None:
        return
    for key in THRESHOLDS:
        value = data.get(key)
        if isinstance(value, float) and math.isnan(value):
            raise ctx.error(f"validate.retrieval.{key} is .nan, which no measure can miss: the check would never "
                            "fail on it", f"{AT}/{key}", f"set a number, or remove {key} to keep its default")
    namespace = (spec.get("mapping") or {}).get("namespace")
    if namespace is not None and not _namespace_mapping(namespace).is_identity:
        raise ctx.error("validate.retrieval is not supported yet with a namespace mapping that moves records "
                        "(mapping.namespace): source and target would answer from differently keyed records",
                        AT, "remove validate.retrieval, or migrate without mapping.namespace")
    r = _retrieval(data, base_dir)
    at = f"{AT}/file"
    problem = safe_paths.file_problem(r.path, must_exist=True)
    if problem is not None:
        raise ctx.error(f"evaluation file {ctx.quoted(at)} ({r.path}) {problem}", at,
                        "point validate.retrieval.file at a JSON Lines file of queries with their relevant ids "
                        "(relative to the spec file)")
    shown = str(ctx.public_value(at))
    try:
        queries = load_eval(r.path, shown=shown, default_k=r.k)
    except SpecError as e:
        raise SpecError(e.message, where=ctx.locations.where(at), hint=e.hint) from None
    dropped = set(((spec.get("mapping") or {}).get("metadata") or {}).get("drop") or [])
    for q in queries:
        gone = sorted(fields(q.filter or {}) & dropped)
        if gone:
            raise ctx.error(f"{q.where}: filter: reads field '{gone[0]}', which mapping.metadata.drop removes from "
                            "the target", at, f"filter on a field the target keeps, or keep '{gone[0]}'")
