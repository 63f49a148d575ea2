"""`vecmig quickstart`: a whole migration on an embedded PostgreSQL, nothing to install by hand."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from vecmig import sample
from vecmig.providers import provider_class
from vecmig.providers.base import CollectionSchema
from vecmig.spec import IndexSpec


def seed(spec_path: Path, records: int, console: Console) -> None:
    from vecmig.spec_loader import load_spec

    spec = load_spec(spec_path)
    src = provider_class(spec.source.provider)(spec.source)
    with src:
        inv = src.inventory()
        if inv.exists and inv.count and inv.count >= records:
            console.print(f"Source {spec.source.label} already holds {inv.count:,} records; not reseeding.")
            return
        dim = (spec.target.create.dimension if spec.target.create else None) or 384
        if inv.exists and inv.count:
            # A seeding that was stopped (Ctrl-C, SIGTERM): the sample is deterministic and the
            # upserts idempotent, so seeding again completes it instead of migrating a part.
            dim = inv.dimension or dim
            console.print(f"Source {spec.source.label} holds {inv.count:,} of the {records:,} sample records "
                          "(an earlier seeding stopped); seeding the rest…")
        else:
            console.print(f"Seeding source {spec.source.label} with {records:,} sample records ({dim} dims, "
                          "24 topic clusters, mixed metadata)…")
        if not inv.exists:
            src.create_collection(CollectionSchema(dimension=dim, metric="cosine", id_type="int",
                                                   metadata=dict(sample.METADATA_TYPES), text=True))
        for batch in sample.batches(records, dim, seed=7):
            src.upsert(batch)
        src.build_index(IndexSpec(type="hnsw"), "cosine")
        if spec.target.alias:
            # Readers start on the old table through the live name; cutover moves them.
            src.switch_alias(spec.target.alias, spec.source.collection)


def run(spec_path: Path, records: int, console: Console) -> None:
    from vecmig.cli import apply

    seed(spec_path, records, console)
    console.print()
    apply(spec_path, auto_approve=True, lock_timeout=30.0)
    console.print(
        "\n[bold]What happened[/bold]: vecmig read the source, planned the actions above, copied every record "
        "in checkpointed batches, built the index, compared counts, ids and checksums on both sides, and "
        "switched the live view to the new table. The old table is kept until you decommission it.\n"
        f"  inspect: vecmig state show {spec_path}\n"
        f"  plan again (no changes): vecmig plan {spec_path}\n"
        f"  roll back: vecmig rollback {spec_path}"
    )
