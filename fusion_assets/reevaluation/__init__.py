"""Re-evaluating the current fused models on one new landing batch (pure; no dagster).

No retraining. ``warehouse.batch_inputs`` reads the batch and the reference
(the training split, the test-split predictions, the reference intervals);
``score`` scores the batch with the fused models in the model store; ``drift``
and ``performance`` turn them into long-format rows (``rows``) that
``warehouse.batch_metrics`` writes to ``eval.batch_metrics``; ``summary``
describes them for the asset's metadata and check. The Dagster asset is
``fusion_assets/assets/batch_evaluation.py``.
"""
