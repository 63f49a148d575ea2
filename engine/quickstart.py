"""`vecmig quickstart`: a whole migration on an embedded PostgreSQL, nothing to install by hand."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vecmig import sample
from vecmig.operations.apply import ApplyRequest, ApplyResult, apply
from vecmig.operations.ui import Ui
from vecmig.providers import provider_class
from vecmig.providers.base import CollectionSchema
from vecmig.spec import IndexSpec


def seed(spec_path: Path, records: int, ui: Ui) -> None:
    from vecmig.spec_loader import load_spec

    spec = load_spec(spec_path)
    src = provider_class(spec.source.provider)(spec.source)
    with src:
        inv = src.inventory()
        if inv.exists and inv.count and inv.count >= records:
            ui.say(f"Source {spec.source.label} already holds {inv.count:,} records; not reseeding.")
            return
        dim = (spec.target.create.dimension if spec.target.create else None) or 384
        if inv.exists and inv.count:
            # A seeding that was stopped (Ctrl-C, SIGTERM): the sample is deterministic and the
            # upserts idempotent, so seeding again completes it instead of migrating a part.
            dim = inv.dimension or dim
            ui.say(f"Source {spec.source.label} holds {inv.count:,} of the {records:,} sample records "
                          "(an earlier seeding stopped); seeding the rest…")
        else:
            ui.say(f"Seeding source {spec.source.label} with {records:,} sample records ({dim} dims, "
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


@dataclass(frozen=True)
class QuickstartRequest:
    spec_path: Path
    records: int = 5000  # sample records to generate in the source


def run(request: QuickstartRequest, ui: Ui) -> ApplyResult:
    """Seed the source, then apply the spec as `vecmig apply SPEC --auto-approve` does."""
    seed(request.spec_path, request.records, ui)
    ui.say("")
    return apply(ApplyRequest(request.spec_path, auto_approve=True, lock_timeout=30.0), ui)
