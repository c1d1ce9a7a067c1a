"""What the columns of the fixed-schema tables mean: the one home of those descriptions.

docs/data-contracts.md describes the same tables for people; the Dagster
metadata (each table's column schema in the UI) reads the descriptions from here,
and ``tests/test_contracts_doc.py`` checks that the document names every column
described here. Per-modality payload columns depend on the kind and are
described by the kind's section of the document.
"""

from __future__ import annotations

_PATIENT = {
    "patient_id": "Pseudonymous patient identifier (never leaves the warehouse)",
    "index_time": "When the prediction is made; only data from before it are used",
    "label": "Outcome, 0 or 1",
    "sex": "F or M",
    "age": "Age in years at index time",
    "site": "Recruiting site",
    "batch_id": "Landing batch the row came from",
}

COLUMN_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "raw.patients": _PATIENT,
    "raw.oracle": {
        "patient_id": _PATIENT["patient_id"],
        "oracle_prob": "Bayes-optimal probability given exactly the patient's modalities",
        "batch_id": _PATIENT["batch_id"],
    },
    "aligned.patients": _PATIENT,
    "profile.availability": {
        "patient_id": _PATIENT["patient_id"],
        "pattern": "Present modalities joined by '+' in spec order ('none' if none)",
        "n_modalities": "Number of modalities the patient has",
        "label": _PATIENT["label"],
    },
    "profile.splits": {
        "patient_id": _PATIENT["patient_id"],
        "split": "train, validation or test",
    },
    "profile.folds": {
        "repeat": "Repeat of the k-fold",
        "fold": "Fold within the repeat",
        "patient_id": _PATIENT["patient_id"],
        "role": "test (the held-out fold), train or validation (inner carve-out)",
    },
    "profile.evaluation_mode": {
        "mode": "holdout or cv",
        "n_patients": "Patients in the cohort",
        "plan_id": "Fingerprint of the fold plan (empty when held out)",
        "settings": "JSON: small_cohort_size, folds, repeats, seed, inner_validation",
    },
    "eval.predictions": {
        "strategy": "Fusion strategy, reference or single:<modality> baseline",
        "patient_id": _PATIENT["patient_id"],
        "split": "validation or test",
        "prob": "Predicted probability of label 1",
        "n_models": "Fold models averaged (cv mode)",
    },
    "eval.oof_predictions": {
        "strategy": "Fusion strategy, reference or single:<modality> baseline",
        "repeat": "Repeat of the k-fold",
        "fold": "Fold model's fold",
        "patient_id": _PATIENT["patient_id"],
        "role": "test or validation, as in profile.folds",
        "prob": "Predicted probability of label 1",
    },
    "eval.model_cost": {
        "strategy": "Fusion strategy, reference or single:<modality> baseline",
        "train_seconds": "Wall seconds of the deployed model's fit",
        "fold_models_seconds": "Wall seconds of its fold models' fits (cv mode; 0 held out)",
        "inference_ms_per_1000": "Wall ms per 1,000 patients of preprocessing + scoring",
        "inference_patients": "Patients the inference time was measured on",
        "n_parameters": "Size of the model, as parameters_counted says",
        "parameters_counted": "What n_parameters counts (torch parameters, tree nodes, ...)",
        "peak_rss_increase_mib": "Peak process RSS during the fit above its start, MiB",
        "peak_rss_mib": "Peak process RSS during the fit, MiB",
    },
    "eval.risk_scores": {
        "batch_id": _PATIENT["batch_id"],
        "patient_id": _PATIENT["patient_id"],
        "index_time": _PATIENT["index_time"],
        "prob": "The champion's predicted probability of label 1",
        "model_name": "Registered model that scored (<cohort>.<strategy>)",
        "strategy": "Fusion strategy of that model",
        "model_version": "Registered version that scored (the champion when scored)",
        "pattern": "The patient's availability pattern (present modalities joined by '+')",
        "n_training_pattern": "Training-split patients with the same pattern",
        "pattern_support": "seen, rare (fewer than rare_pattern_below) or unseen in training",
        "flagged": "The pattern was rare or unseen in training",
        "pattern_auroc": "The strategy's held-out AUROC on this pattern (eval.subgroup_metrics)",
        "pattern_auroc_ci_low": "Lower bound of that AUROC's 95 % interval",
        "pattern_auroc_ci_high": "Upper bound of that AUROC's 95 % interval",
        "auroc_subgroup": "The report's subgroup the AUROC is from (the pattern, or 'other')",
        "scored_at": "When the batch was scored (UTC)",
        "dagster_run_id": "The Dagster run that scored it",
    },
}


def column_description(table: str, column: str) -> str | None:
    """The description of ``column`` of ``schema.table`` (``None`` when not a fixed column)."""
    return COLUMN_DESCRIPTIONS.get(table, {}).get(column)
