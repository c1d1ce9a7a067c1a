"""What one batch re-evaluation reads (``warehouse.batch_inputs`` fills it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class BatchInputs:
    # patient_id, label, pattern, <modality> bools, in_training (already in profile.splits)
    batch: pd.DataFrame
    reference: pd.DataFrame | None  # the same for the training split, or None
    frames: dict[str, pd.DataFrame]  # aligned.<modality> rows of the batch's patients
    summaries: dict[str, tuple[pd.DataFrame, pd.DataFrame | None]]  # modality -> (batch, train)
    reference_predictions: pd.DataFrame | None  # strategy, prob (test split)
    reference_auroc: pd.DataFrame | None  # strategy, auroc, ci_low, ci_high

    @property
    def n_labelled(self) -> int:
        return int(self.batch["label"].notna().sum())

    @property
    def in_training(self) -> np.ndarray:
        """The batch's patients the current models were fitted or tested on."""
        if "in_training" not in self.batch.columns:
            return np.zeros(len(self.batch), dtype=bool)
        return self.batch["in_training"].to_numpy(dtype=bool)

    @property
    def n_in_training(self) -> int:
        return int(self.in_training.sum())

    @property
    def is_training_batch(self) -> bool:
        """Every patient of the batch is in the training cohort: nothing new to evaluate."""
        return len(self.batch) > 0 and self.n_in_training == len(self.batch)
