"""The code location: every cohort declared under ``fusion_assets/defs/``, side by side.

``dagster dev -w workspace.yaml`` (``make ui``), ``dg dev`` and the deployment
load ``defs``. Each ``fusion_assets/defs/<cohort>/defs.yaml`` is a cohort
(location/component.py); ``fusion_assets/defs/resources.py`` the shared
resources. The shortcut ``FUSION_COHORT_SPEC=<spec file>`` serves exactly that
cohort instead (named after the spec).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from fusion_assets.cohorts import COHORT_SPEC_ENV
from fusion_assets.location.build import build_location
from fusion_assets.location.cohort import cohort_name
from fusion_assets.location.component import cohort_from_source

__all__ = ["defs", "load_definitions"]


def load_definitions() -> dg.Definitions:
    spec = os.environ.get(COHORT_SPEC_ENV)
    if spec:
        from fusion_assets.cohorts.spec_file import read_spec_file

        name = cohort_name(read_spec_file(spec).name)
        return build_location([cohort_from_source(name, spec=Path(spec))])
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


defs = load_definitions()
