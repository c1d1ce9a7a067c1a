"""The one place a deployment profile is resolved: the run's override or the spec's, a
named landed batch measured into its availability-pattern mix.

Every step that needs the deployment (the recommendation, the predictions step's
stress tests, the subgroup report) calls :func:`resolve_deployment`, so a run's
override and a batch's measured mix mean the same thing everywhere.

A batch's patients are the patients it landed (``raw.patients.batch_id``); their
patterns are those of ``profile.availability`` (``warehouse.batch_inputs.presence``:
a modality is present when ``aligned.<modality>`` has the patient), the same patterns
the held-out patients are reweighted by.

DuckDB and pydantic only; no dagster.
"""

from __future__ import annotations

import duckdb

from fusion_assets.cohorts import CohortSpec
from fusion_assets.cohorts.deployment_profile import DeploymentProfile, DeploymentSettings
from fusion_assets.disclosure import SMALL_CELL_LIMIT
from fusion_assets.warehouse.batch_inputs import BATCH_IDS_SQL, presence
from fusion_assets.warehouse.ingest import LEDGER
from fusion_assets.warehouse.sql import table_exists


class DeploymentBatchError(ValueError):
    """A deployment profile names a batch that is not landed, or that has no patients (or
    fewer than the small-cell limit: its mix could not be published)."""


def landed_batches(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Batch ids of the ledger (``raw.batches``), in landing order."""
    if not table_exists(con, "raw", "batches"):
        return []
    return [r[0] for r in con.execute(f"SELECT batch_id FROM {LEDGER} ORDER BY seq").fetchall()]


def measure_batch(
    con: duckdb.DuckDBPyConnection, spec: CohortSpec, profile: DeploymentProfile
) -> DeploymentProfile:
    """``profile`` (naming a batch) with the pattern mix of that batch's patients."""
    batch = profile.batch
    landed = landed_batches(con)
    if batch not in landed:
        raise DeploymentBatchError(
            f"Deployment profile {profile.name!r} names batch {batch!r}, which is not landed in "
            f"this cohort's warehouse; landed batches: {', '.join(landed) or 'none'}. Name one "
            "of them, or land the batch first."
        )
    has_tables = table_exists(con, "raw", "patients") and table_exists(con, "aligned", "patients")
    patterns = presence(con, spec, BATCH_IDS_SQL, [batch])["pattern"] if has_tables else []
    if len(patterns) < SMALL_CELL_LIMIT:
        has = "no aligned patients" if len(patterns) == 0 else f"under {SMALL_CELL_LIMIT} patients"
        raise DeploymentBatchError(
            f"Deployment profile {profile.name!r} names batch {batch!r}, which has {has} to "
            f"measure availability on (landed batches: {', '.join(landed)}). Name a batch with "
            f"at least {SMALL_CELL_LIMIT} aligned patients (fewer cannot be published), or run "
            "alignment after landing it."
        )
    shares = patterns.value_counts(normalize=True)
    return DeploymentProfile(
        name=profile.name,
        patterns={str(p): float(share) for p, share in shares.items()},
        batch=batch,
        batch_patients=len(patterns),
    )


def resolve_deployment(
    con: duckdb.DuckDBPyConnection,
    spec: CohortSpec,
    settings: DeploymentSettings | None = None,
) -> DeploymentProfile | None:
    """The run's deployment profile: ``settings``' override if it gives one, else the spec's;
    a named batch measured (``measure_batch``); None when neither gives a profile."""
    override = settings.deployment_override() if settings is not None else None
    return measured(con, spec, override or spec.deployment)


def measured(
    con: duckdb.DuckDBPyConnection, spec: CohortSpec, profile: DeploymentProfile | None
) -> DeploymentProfile | None:
    """``profile`` ready to use: a named batch measured, checked against the modalities."""
    if profile is None:
        return None
    if profile.needs_measuring:
        profile = measure_batch(con, spec, profile)
    profile.check(spec.modality_names)
    return profile
