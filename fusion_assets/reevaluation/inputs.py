"""What one batch re-evaluation reads (``warehouse.batch_inputs`` fills it)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass
class BatchInputs:
    batch: pd.DataFrame  # patient_id, label, pattern, <modality> bools
    reference: pd.DataFrame | None  # the same for the training split, or None
    frames: dict[str, pd.DataFrame]  # aligned.<modality> rows of the batch's patients
    summaries: dict[str, tuple[pd.DataFrame, pd.DataFrame | None]]  # modality -> (batch, train)
    reference_predictions: pd.DataFrame | None  # strategy, prob (test split)
    reference_auroc: pd.DataFrame | None  # strategy, auroc, ci_low, ci_high

    @property
    def n_labelled(self) -> int:
        return int(self.batch["label"].notna().sum())
