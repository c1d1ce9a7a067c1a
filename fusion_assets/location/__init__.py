"""The code location: cohorts served side by side.

``cohort`` names everything a cohort owns (light: the sensors import it);
``build`` assembles the definitions and the shared resources; ``component``
reads the cohorts declared under ``fusion_assets/defs/``.
"""

from fusion_assets.location.cohort import Cohort, SyntheticSource

__all__ = ["Cohort", "SyntheticSource"]
