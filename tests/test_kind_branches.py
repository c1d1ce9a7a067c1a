"""Outside ``fusion_assets/kinds`` no code branches on a modality kind's name.

A branch like ``if modality.kind == "image"`` or a table keyed by kind names
makes a new kind a many-file change again; the kind's own module is where such
logic goes (docs/architecture.md, "How to add a modality kind").
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fusion_assets.kinds import get_kind, kind_names

PACKAGE = Path(__file__).resolve().parents[1] / "fusion_assets"

_NAMES = "tabular|omics|omics_dense|omics_sparse|image|timeseries|text"
BRANCHES = {
    "a modality's kind compared": r"\.kind\s*(==|!=|\bnot\s+in\b|\bin\b)",
    "a kind compared with a kind name": rf"\bkind\w*\s*(==|!=)\s*['\"]({_NAMES})['\"]",
    "a kind name compared with a kind": rf"['\"]({_NAMES})['\"]\s*(==|!=)\s*[\w.]*kind\b",
    "a kind looked up among kind names": rf"\bkind\w*\s+(not\s+)?in\s*[(\[{{]\s*['\"]({_NAMES})",
    "a preprocessing tag named": r"['\"]omics_(dense|sparse)['\"]",
    "the preprocessing tag compared": rf"\[\s*['\"]kind['\"]\s*\]\s*(==|!=)\s*['\"]({_NAMES})['\"]",
    "a table keyed by kind names": r"['\"](tabular|omics|image|timeseries)['\"]\s*:\s*\S",
    "the removed input_kind": r"\binput_kind\b",
}


def _hits(text: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0]
        for what, pattern in BRANCHES.items():
            if re.search(pattern, code):
                found.append(f"{number}: {what}: {line.strip()}")
    return found


@pytest.mark.parametrize(
    "line",
    [
        'if modality.kind == "timeseries":',
        "has_days = spec.kind in ('tabular', 'image')",
        'if kind == "text":',
        'elif state_kind != "omics_sparse":',
        'if "image" == m.kind:',
        'if state["kind"] == "omics_dense":',
        '_FIT = {"tabular": _fit_tabular}',
        "kind = input_kind(modality)",
        "if kind in ('omics', 'image'):",
    ],
)
def test_the_patterns_catch_kind_branches(line: str) -> None:
    assert _hits(line), line


def test_the_patterns_leave_other_kinds_of_kind_alone() -> None:
    ok = [
        'if kind == "p":  # a report block',
        'for col, kind in (("sex", "sex"), ("site", "site")):',
        'frame = pd.DataFrame({"text": texts})',
        "kind = kind_of(modality)",
        'tags={"fusion.kind": store_kind}',
        'drift = table[table["kind"] == "drift"]  # a metrics table column',
    ]
    assert not [line for line in ok if _hits(line)]


def test_no_code_outside_kinds_branches_on_a_kind_name() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if PACKAGE / "kinds" in path.parents:
            continue
        hits = _hits(path.read_text(encoding="utf-8"))
        if hits:
            offenders[str(path.relative_to(PACKAGE.parent))] = hits
    assert not offenders, f"kind branches outside fusion_assets/kinds: {offenders}"


def test_every_builtin_kind_is_registered_and_pure() -> None:
    assert kind_names()[:5] == ("tabular", "omics", "image", "timeseries", "text")
    for path in (PACKAGE / "kinds").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert "import dagster" not in source and "from dagster" not in source, path
        # torch only inside the methods that build or run torch modules
        assert not re.search(r"^(import torch|from torch)", source, re.M), path
    assert {k.preprocessing_tag for n in kind_names() for k in get_kind(n).formats()} >= {
        "tabular",
        "omics_dense",
        "omics_sparse",
        "image",
        "timeseries",
        "text",
    }
