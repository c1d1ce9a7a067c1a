"""The study's design: which synthetic deployment realities answer which rule or claim.

Pure code (no dagster). A :class:`StudyCell` is one synthetic cohort: the generator's
settings (``cohorts/synthetic.py``) plus a seed. The designed grid is not the full product
of the axes; each block varies the axes one rule or claim needs and fixes the rest:

- ``early``: small (1,500), complete, controlled (2 sites) cohorts with no dimensionality
  gap (100 genes), in all three regimes: the early-fusion rule and seed claim 1 (early
  fusion ahead on complete data). 3 regimes x 3 seeds x 300 test patients = 2,700
  complete-case test patients.
- ``dimgap``: 3,000 patients, every modality present for 85 % (about half complete, MCAR),
  genomics 10^2 / 10^3 / 10^4 dense and 10^6 sparse: the intermediate-fusion rule.
- ``missing``: 3,000 patients at the default sparse availability (5 % complete) under
  MCAR / MAR / MNAR: the late-fusion rule.
- ``temporal``: 3,000 patients, wearables for 90 %, the wearables' signal in the level only
  (none) or in the trend only (strong): the attention rule.
- ``size``: the default sparse MAR cohort at 1,000 patients (3,000 is the ``missing``
  block's MAR cell): how the ranking moves with cohort size.

Every cell also feeds seed claim 2 (late fusion degrades least as modalities go missing),
from its random-removal stress test.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Availability settings of the generator by name; "complete" uses missingness="complete".
AVAILABILITY: dict[str, dict[str, float] | None] = {
    "complete": None,
    # 0.85 each for the four optional modalities: 0.85^4 = 52 % complete cases.
    "half_complete": {
        "ehr": 1.0,
        "genomics": 0.85,
        "imaging": 0.85,
        "wearables": 0.85,
        "notes": 0.85,
    },
    # The generator's default (ehr 100 %, notes 80 %, imaging 50 %, wearables 40 %,
    # genomics 30 %): about 5 % complete cases.
    "sparse": {},
    # Wearables common, the rest as half_complete: the attention rule's cohort.
    "wearables_common": {
        "ehr": 1.0,
        "genomics": 0.85,
        "imaging": 0.85,
        "wearables": 0.9,
        "notes": 0.85,
    },
}


class StudyCell(BaseModel):
    """One synthetic cohort of the study: a block of the design, its settings and a seed."""

    model_config = ConfigDict(frozen=True)

    block: str = Field(description="The design block (the rule or claim it answers)")
    name: str = Field(description="The cell within its block, e.g. 'regime=synergy'")
    n_patients: int = Field(ge=100)
    availability: str = Field(default="sparse", description="A key of AVAILABILITY")
    missingness: str = "mar"
    regime: str = "correlated"
    genomics_format: str = "dense"
    genomics_features: int = 2_000
    temporal: str = "mixed"
    sites: int = 4
    seed: int = 0

    @property
    def cell_id(self) -> str:
        """Unique and filesystem-safe: the cell's folder and its row key."""
        return f"{self.block}__{self.name.replace('=', '-')}__s{self.seed}"

    @property
    def design_cell(self) -> str:
        """The cell without its seed (what the seeds replicate)."""
        return f"{self.block}/{self.name}"

    def generator_settings(self) -> dict[str, Any]:
        """Keyword arguments of ``synthesize_batch`` (beyond size, seed and batch id)."""
        rates = AVAILABILITY[self.availability]
        settings: dict[str, Any] = {
            "regime": self.regime,
            "missingness": "complete" if self.availability == "complete" else self.missingness,
            "genomics_format": self.genomics_format,
            "genomics_features": self.genomics_features,
            "temporal": self.temporal,
            "sites": self.sites,
        }
        if rates:
            settings["availability"] = rates
        return settings


SEEDS: tuple[int, ...] = (0, 1, 2)


def _seeded(cells: list[dict[str, Any]], seeds: tuple[int, ...]) -> list[StudyCell]:
    # Seed-major: an interrupted study has every design cell for the first seeds.
    return [StudyCell(**cell, seed=seed) for seed in seeds for cell in cells]


def designed_grid(seeds: tuple[int, ...] = SEEDS) -> list[StudyCell]:
    """The full designed grid (module docstring): every cell for seed 0, then seed 1, …"""
    cells: list[dict[str, Any]] = []
    for regime in ("independent", "correlated", "synergy"):
        cells.append(
            {
                "block": "early",
                "name": f"regime={regime}",
                "n_patients": 1_500,
                "availability": "complete",
                "regime": regime,
                "genomics_features": 100,
                "sites": 2,
            }
        )
    for mechanism in ("mcar", "mar", "mnar"):
        cells.append(
            {
                "block": "missing",
                "name": f"mechanism={mechanism}",
                "n_patients": 3_000,
                "missingness": mechanism,
            }
        )
    for temporal in ("none", "strong"):
        cells.append(
            {
                "block": "temporal",
                "name": f"temporal={temporal}",
                "n_patients": 3_000,
                "availability": "wearables_common",
                "missingness": "mcar",
                "temporal": temporal,
            }
        )
    for genes, fmt in ((100, "dense"), (1_000, "dense"), (10_000, "dense"), (0, "sparse")):
        cells.append(
            {
                "block": "dimgap",
                "name": "genomics=1e6 sparse" if fmt == "sparse" else f"genomics={genes}",
                "n_patients": 3_000,
                "availability": "half_complete",
                "missingness": "mcar",
                "genomics_format": fmt,
                "genomics_features": genes if fmt == "dense" else 2_000,
            }
        )
    # The size axis: 1,000 here against the missing block's 3,000-patient MAR cell (the
    # default demo cohort is the 5,000 point, with one seed; 20,000 is not run: at about 20
    # minutes a cell on two cores, three seeds cost an hour).
    cells.append({"block": "size", "name": "n=1000", "n_patients": 1_000})
    for cell in cells:  # the names must be filesystem-safe once '=' is replaced
        cell["name"] = cell["name"].replace(" ", "_")
    return _seeded(cells, seeds)


def tiny_grid() -> list[StudyCell]:
    """Two small cells for the tests: a complete cohort and a sparse one (one seed)."""
    return [
        StudyCell(
            block="early",
            name="regime=correlated",
            n_patients=400,
            availability="complete",
            genomics_features=100,
            sites=2,
        ),
        StudyCell(block="missing", name="mechanism=mcar", n_patients=400, missingness="mcar"),
    ]


GRIDS = {"designed": designed_grid, "tiny": tiny_grid}


def select_cells(grid: str, only: list[str] | None = None) -> list[StudyCell]:
    """The cells of grid ``grid`` (a key of GRIDS), only those whose id starts with one of
    ``only`` when given (the CLI's and the benchmark's ``--only``)."""
    cells = GRIDS[grid]()
    return [c for c in cells if not only or any(c.cell_id.startswith(p) for p in only)]
