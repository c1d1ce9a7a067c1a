"""Evaluation maths for the fusion pipeline (pure numpy/pandas/matplotlib; no dagster, no torch).

Modules, one job each:
  classification  point metrics (AUROC, AUPRC, Brier, calibration, ECE, thresholds)
  bootstrap       paired label-stratified bootstrap and vectorised weighted metrics
  subgroups       strategy x subgroup table with paired CIs, suppression, flags
  degradation     random modality masks, degradation curves/areas, complete-case tables
  leakage         flags strategies that beat the Bayes-optimal oracle
  verdict         recommendation vs measured winner, seed-claim checks
  evaluate        evaluate(): every table in one call
  plots           every figure (the report's, the profile's availability chart)
  report          the Markdown/HTML report (render_report)
"""
