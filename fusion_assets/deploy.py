"""The production code location: the same cohorts, a multiprocess executor, MLflow in a database.

Loaded by ``deploy/workspace.yaml`` with the instance of ``deploy/dagster.yaml``
(PostgreSQL storage, queued runs). Differences from the laptop location
(``fusion_assets.definitions``), each a deployment choice rather than code:

- the multiprocess executor: the independent steps of a run (the aligned tables
  of a re-evaluation, the checks) start in parallel, the DuckDB writers still one
  at a time through their pool; training partitions are separate runs, which the
  queue runs in parallel;
- MLflow's store is ``MLFLOW_TRACKING_URI`` (``postgresql+psycopg2://…``), read when a run
  starts (``dg.EnvVar``), so every run process, on any machine, writes the same
  tracking database.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from fusion_assets.location import Cohort
from fusion_assets.location.build import build_location, location_resources

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"

# A step process is forked from a server that has imported dagster and this code location
# once, instead of importing them again (seconds) for every step. torch is not preloaded:
# its thread pools must not be created before a fork.
EXECUTOR = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["fusion_assets.location.build"]}}}
)


def deploy_location(cohorts: Iterable[Cohort]) -> dg.Definitions:
    return build_location(
        cohorts, location_resources(tracking_uri=dg.EnvVar(TRACKING_URI_ENV)), executor=EXECUTOR
    )


def _declared() -> list[Cohort]:
    from fusion_assets.location.component import declared_cohorts

    return list(declared_cohorts().values())


defs = deploy_location(_declared())
