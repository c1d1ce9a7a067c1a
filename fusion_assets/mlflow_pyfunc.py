"""A fitted fusion model as an MLflow pyfunc model (input format: ``pyfunc_io``).

Logged as "model from code": MLflow stores this file, not a pickle of the object.
"""

from pathlib import Path

import mlflow.models
import mlflow.pyfunc
import numpy as np
import pandas as pd

from fusion_assets.models.api import FittedModel, load_model
from fusion_assets.pyfunc_io import json_to_frames


class FusionPyfuncModel(mlflow.pyfunc.PythonModel):
    """Loads the model-store folder logged as the ``model_dir`` artifact."""

    def load_context(self, context) -> None:
        self.model: FittedModel = load_model(Path(context.artifacts["model_dir"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        frames = json_to_frames(model_input, self.model.modalities)
        prepared = self.model.prepare(frames, model_input["patient_id"].astype(str).tolist())
        return self.model.predict_proba(prepared)


mlflow.models.set_model(FusionPyfuncModel())
