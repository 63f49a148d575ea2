"""How the diff and validation compare a target whose vectors are re-embedded (``transform.embed``).

Its vectors are the new model's, a function of each record's text: they are not compared (the
digests leave them out); ids, metadata and text are. Where ``keep_old`` is set, the target's
field of that name must hold the source's vector bit for bit, so the source side is hashed with
that field added, exactly as the copy writes it. So a source record whose vector alone changed
(same text) is not a change: the target's vector would come out the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from vecmig.embed.keep_old import with_old_vectors
from vecmig.records import Batch
from vecmig.spec import Spec


@dataclass(frozen=True)
class Reembedded:
    keep_old: str | None = None

    def as_target(self, mapped: Batch) -> Batch:
        """The mapped source records as the re-embedded target holds them, but for the vectors."""
        if self.keep_old is None:
            return mapped
        return Batch(ids=mapped.ids, vectors=mapped.vectors, metadata=with_old_vectors(mapped, self.keep_old),
                     texts=mapped.texts, cursor=mapped.cursor, extra=mapped.extra)


def of_spec(spec: Spec) -> Reembedded | None:
    """At plan time (and for catch-up's passes, which follow the live spec): from ``transform.embed``."""
    embed = spec.transform.embed
    return None if embed is None else Reembedded(embed.keep_old)
