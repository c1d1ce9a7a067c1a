"""The recorded study's evidence, which the report's verdict cites.

Pure code. ``benchmarks/study.py`` writes ``evidence.json`` beside this module from the
study's answer (``analysis.evidence``); the subgroup report reads it back with
:func:`load_evidence` and prints what the study found about the rule that made this
cohort's recommendation. No file (a study never recorded): nothing is cited.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVIDENCE_FILE = Path(__file__).with_name("evidence.json")
STUDY_RESULTS = "benchmarks/results/study.md"


def load_evidence(path: Path = EVIDENCE_FILE) -> dict[str, Any] | None:
    """The recorded evidence, or ``None`` when no study was recorded."""
    if not path.exists():
        return None
    return json.loads(path.read_text())


def study_sentences(recommended: str | None, evidence: dict[str, Any] | None) -> list[str]:
    """What the recorded study says about recommending ``recommended``, and about the claims."""
    if evidence is None:
        return []
    where = f"the study of synthetic deployment realities ({STUDY_RESULTS}, {evidence['commit']})"
    out = []
    rule = evidence["rules"].get(recommended or "")
    if rule:
        out.append(
            f"In {where} the decision matrix recommended {recommended} in {rule['cells']} "
            f"cell(s); it was the measured winner or within the paired interval of it in "
            f"{rule['agrees']} ({rule['agreement_rate']:.0%})."
        )
    elif recommended:
        out.append(f"In {where} the decision matrix never recommended {recommended}.")
    for claim in evidence["claims"]:
        out.append(
            f"Pooled over the study's cells, “{claim['claim']}”: {claim['verdict']} ({claim['evidence']})."
        )
    return out
