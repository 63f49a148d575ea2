"""What a re-embed will take, estimated at plan time: tokens, time on this machine, money.

Tokens are counted on a sample of the source's texts with the model's own tokenizer and
extrapolated to the texts the copy embeds, with a 95% interval of the mean (exact when the
sample is every text). Time comes from a short probe of the model on this machine: one warm-up
batch, then a few dozen sample texts timed, as tokens per second (a batch's cost grows with
its tokens, so a probe of short texts still prices long ones). An API model is probed with a
few requests at its concurrency and bounded by its tokens-per-minute limit.
"""

from __future__ import annotations

import math
import sqlite3
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vecmig.embed.cache import text_key
from vecmig.embed.config import EmbedConfigError
from vecmig.embed.model import Model

Z95 = 1.96
# Texts timed after the warm-up: whole batches only (a part-filled batch costs nearly a full one,
# which a run of thousands never pays), about two of the default 32.
PROBE_TEXTS = 64
WARMUP_TEXTS = 8
CHARS_PER_TOKEN = 4.0  # OpenAI's rule of thumb for English, used only where no tokenizer is known
# Without a tokenizer, the count may be this far off either way (code, non-Latin scripts).
UNCOUNTED_SPREAD = 1.5


@dataclass(frozen=True)
class TokenEstimate:
    """Tokens of ``texts`` texts, extrapolated from ``sample`` counted ones."""

    texts: int
    sample: int
    low: int
    expected: int
    high: int
    exact: bool  # every text was counted
    counted: bool  # with the model's tokenizer (False: estimated from characters)


def estimated_counts(texts: Sequence[str]) -> list[int]:
    return [max(1, math.ceil(len(t) / CHARS_PER_TOKEN)) for t in texts]


def extrapolate(counts: Sequence[int], texts: int, *, population: int, counted: bool = True) -> TokenEstimate:
    """Tokens of ``texts`` texts from the counts of a sample drawn from ``population`` records.

    The interval is the mean's (finite-population corrected) 95% one times ``texts``: the
    sample is the source's first records, not a random draw, so it is a guide, not a promise.
    """
    n = len(counts)
    if n == 0 or texts <= 0:
        return TokenEstimate(max(texts, 0), n, 0, 0, 0, exact=texts <= 0, counted=counted)
    mean = statistics.fmean(counts)
    if n >= population and texts == n:
        total = int(sum(counts))
        low, high = (total, total) if counted else (math.floor(total / UNCOUNTED_SPREAD),
                                                    math.ceil(total * UNCOUNTED_SPREAD))
        return TokenEstimate(texts, n, low, total, high, exact=counted, counted=counted)
    sd = statistics.stdev(counts) if n > 1 else mean
    fpc = math.sqrt(max(0.0, 1 - n / population)) if population > n else 1.0
    half = Z95 * sd / math.sqrt(n) * fpc
    low_mean, high_mean = max(min(counts), mean - half), mean + half
    if not counted:
        low_mean, high_mean = low_mean / UNCOUNTED_SPREAD, high_mean * UNCOUNTED_SPREAD
    return TokenEstimate(texts, n, math.floor(low_mean * texts), round(mean * texts), math.ceil(high_mean * texts),
                         exact=False, counted=counted)


@dataclass(frozen=True)
class Speed:
    """Tokens per second the model embeds here, and how that was found."""

    tokens_per_s: float
    texts_per_s: float
    how: str


def probe(model: Model, texts: Sequence[str], counts: Sequence[int], *, api: bool,
          tokens_per_minute: int | None = None, concurrency: int = 1,
          embed: Callable[[Sequence[str]], object] | None = None) -> Speed | None:
    """Embed a few of ``texts`` (ones the model takes) and time it; None when there is none.
    ``embed`` replaces ``model.embed`` (a paid endpoint's probe goes through the cache, so apply
    does not pay for the same texts again)."""
    run = embed if embed is not None else model.embed
    limit = model.max_tokens
    usable = [t for t, c in zip(texts, counts, strict=True) if t.strip() and (limit is None or c <= limit)]
    if not usable:
        return None
    batch = model.config.batch_size
    whole = PROBE_TEXTS // batch * batch if batch <= PROBE_TEXTS else PROBE_TEXTS  # one batch of that size
    warm, timed = usable[:WARMUP_TEXTS], usable[:whole]
    if api:
        # A few requests, as many in flight as apply sends: the wall time is what concurrency buys.
        timed = usable[:min(len(usable), model.config.batch_size * min(concurrency, 4), PROBE_TEXTS)]
        warm = usable[:1]
    run(warm)  # loads kernels / opens the connection: not what a long run pays per text
    tokens = sum(model.lengths(timed)) if not api or _has_tokenizer(model) else sum(estimated_counts(timed))
    start = time.perf_counter()
    run(timed)
    elapsed = max(time.perf_counter() - start, 1e-6)
    tps, per_text = tokens / elapsed, len(timed) / elapsed
    how = f"{len(timed)} sample texts embedded in {elapsed:.2f} s on this machine after a warm-up batch"
    if api:
        how = f"{len(timed)} sample texts in {elapsed:.2f} s from the endpoint at concurrency {concurrency}"
        if tokens_per_minute and tps > tokens_per_minute / 60:
            per_text *= (tokens_per_minute / 60) / tps
            tps = tokens_per_minute / 60
            how += f", bounded by tokens_per_minute {tokens_per_minute:,}"
    # Rounded to two significant figures: the same machine gives the same plan more often.
    return Speed(_sig2(tps), _sig2(per_text), how)


def _has_tokenizer(model: Model) -> bool:
    try:
        model.count_tokens(["x"])
    except EmbedConfigError:  # an API model without api.tokenizer: counts are estimated
        return False
    return True


def _sig2(x: float) -> float:
    if x <= 0:
        return 0.0
    return round(x, 1 - math.floor(math.log10(x)))


def cached_count(path: str | None, identity: str, texts: Sequence[str]) -> int | None:
    """How many of ``texts`` the SQLite embedding cache at ``path`` holds for ``identity``,
    read without creating or changing anything; 0 when there is no cache file yet, None when
    the cache is not a file vecmig can read here (a postgresql:// URL)."""
    if path is None or "://" in path:
        return None
    p = Path(path)
    if not p.is_file():
        return 0
    keys = list(dict.fromkeys(text_key(t) for t in texts))
    found: set[bytes] = set()
    try:
        db = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            rows = db.execute(f"SELECT text_sha256 FROM embeddings WHERE model = ? AND text_sha256 IN "
                              f"({','.join('?' * len(part))})", [identity, *part]).fetchall()
            found.update(bytes(r[0]) for r in rows)
    except sqlite3.Error:
        return None
    finally:
        db.close()
    return sum(1 for t in texts if text_key(t) in found)
