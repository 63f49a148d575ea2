"""Does search still work? Queries, exact ground truth, both sides' answers, and the gate.

``queries`` loads a query file and samples queries from the source; ``exact`` computes the
true top-k by scoring every record (the reference recall is measured against); ``runner``
sends queries to a store at a given concurrency and times each; ``metrics`` holds the
per-query measures; ``compare`` turns both sides' answers into a :class:`Report` and checks it
against the thresholds of a :class:`Gate`; ``report`` renders a report for people.
Store-neutral: stores answer through :meth:`Provider.query`.
"""

from vecmig.quality.compare import Gate, QueryResult, Report, compare
from vecmig.quality.queries import Query, load_queries, sample_queries
from vecmig.quality.runner import Answer, run_queries

__all__ = ["Answer", "Gate", "Query", "QueryResult", "Report", "compare", "load_queries", "run_queries",
           "sample_queries"]
