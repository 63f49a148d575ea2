"""Search: ``query`` through the SDK, scores converted to vecmig's similarity.

Pinecone's metadata filter language is the one :mod:`vecmig.filters` is modelled on, so a
filter goes out as written, but for what Pinecone refuses or reads otherwise: range operators
compare numbers only (a string bound is refused here, by operator, rather than by a 400), and
the record text lives in metadata under the text key, which is no metadata field to vecmig.

Scores: cosine and dotproduct come back as similarities; euclidean as the SQUARED distance,
lower is closer ("euclidean ... returns a similarity score equal to the squared Euclidean
distance": Pinecone's docs on similarity metrics; the local server scores the same), which
becomes the negated plain distance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from vecmig.errors import TerminalError
from vecmig.filters import COMBINERS, Filter, conditions, fields
from vecmig.providers.pinecone.common import ALL_NAMESPACES
from vecmig.providers.pinecone.write import PineconeWriter
from vecmig.search import Hit, merge

MAX_TOP_K = 10_000  # the API's limit on top_k (the SDK refuses more before sending)
RANGE = ("$gt", "$gte", "$lt", "$lte")


def to_similarity(metric: str, score: float) -> float:
    """Pinecone's score as :class:`vecmig.search.Hit` wants it (higher is closer)."""
    if metric == "euclidean":
        return -math.sqrt(max(float(score), 0.0))
    return float(score)


def pinecone_filter(flt: Filter, *, text_key: str, selected: tuple[str, ...] | None) -> dict[str, Any]:
    """The filter as Pinecone takes it; :class:`TerminalError` naming what it cannot express."""
    for name in fields(flt):
        if name == text_key:
            raise TerminalError(f"cannot filter Pinecone queries on '{name}': that metadata key holds the record "
                                "text, which vecmig does not treat as metadata",
                                hint="filter on a metadata field, or map the text to another key (fields.text)")
        if selected is not None and name not in selected:
            raise TerminalError(f"cannot filter on '{name}': fields.metadata does not select it, so vecmig's "
                                "records lack it while Pinecone's have it",
                                hint=f"add '{name}' to fields.metadata or leave it out of the filter")
    _check_ranges(flt)
    return dict(flt)


def _check_ranges(flt: Filter) -> None:
    for key, value in flt.items():
        if key in COMBINERS:
            for part in value:
                _check_ranges(part)
            continue
        for op, arg in conditions({key: value})[key].items():
            if op in RANGE and not isinstance(arg, int | float):
                raise TerminalError(f"Pinecone cannot filter '{key}' with {op} on a string ({arg!r}): its range "
                                    "operators compare numbers only",
                                    hint="use $eq/$in for strings, or store the field as a number")


class PineconeSearch(PineconeWriter):
    # ---- search ---------------------------------------------------------------------------

    def query(self, vector: np.ndarray, k: int, flt: Filter | None = None) -> list[Hit]:
        if k <= 0:
            return []
        if k > MAX_TOP_K:
            raise TerminalError(f"Pinecone answers at most {MAX_TOP_K} results per query, not k={k}",
                                hint=f"ask for k <= {MAX_TOP_K}")
        body = pinecone_filter(flt, text_key=self._text_key, selected=self._select) if flt else None
        metric = self._shape(self._ready_model())[1]
        values = [float(x) for x in np.asarray(vector, dtype=np.float32).reshape(-1)]
        if self._namespace != ALL_NAMESPACES:
            return self._query_namespace(self._namespace, values, k, body, metric)
        hits: list[Hit] = []
        for namespace in self._namespace_counts():  # "*": every namespace, one ranking
            hits = merge(hits, self._query_namespace(namespace, values, k, body, metric), k)
        return hits

    def _query_namespace(self, namespace: str, values: list[float], k: int, body: Mapping[str, Any] | None,
                         metric: str) -> list[Hit]:
        index = self._data()
        response = self._call(
            f"querying namespace '{namespace}'",
            lambda: index.query(vector=values, top_k=k, namespace=namespace, filter=body,
                                include_values=False, include_metadata=False))
        return [Hit(str(m.id), to_similarity(metric, m.score)) for m in response.matches]

    def search_settings(self) -> dict[str, Any]:
        """Serverless Pinecone has no index parameters to tune: what it searches with is the
        metric (and the namespace) alone."""
        model = self._ready_model()
        return {"index_type": "serverless", "metric": self._shape(model)[1], "namespace": self._namespace,
                "max_top_k": MAX_TOP_K}
