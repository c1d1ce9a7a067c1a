"""Training presets, and the one chosen from a cohort's profile.

``default`` is sized for the laptop synthetic cohort (thousands of patients,
10^1-10^3 features per modality). ``small_n`` is for the cohorts real users
bring first: a few hundred patients, few events per feature, or a block with
more features than patients (p >> n). It regularises harder and screens wide
dense-omics blocks to the features most correlated with the label, fitted on
each training fold's own patients and labels (``models.screening``). ``tiny``
trains in seconds (tests). ``auto`` picks ``small_n`` or ``default`` from the
profile (``choose_preset``) and the choice and its reasons are recorded.

A run trains with ``default`` unless it asks for another (``TrainingSettings``):
measured on two real cohorts (``benchmarks/results/presets.md``), ``small_n`` was
not better on both, so ``auto`` stays an option, not the default.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from fusion_assets.models.config import EncoderConfig, FusionConfig, TrainConfig

PresetName = Literal["auto", "default", "small_n", "tiny"]

# below this many patients, or events per feature below EVENTS_PER_FEATURE, or any block
# wider than the cohort: the small-n preset
SMALL_N_PATIENTS = 1_000
EVENTS_PER_FEATURE = 0.1
# dense omics features the small-n preset keeps per fold (by |correlation| with the label)
SMALL_N_SCREEN_TOP_K = 200


@dataclass(frozen=True)
class PresetChoice:
    """A preset and the profile numbers that chose it."""

    name: str
    reasons: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"preset": self.name, "reasons": list(self.reasons)}


def choose_preset(summary: dict[str, Any]) -> PresetChoice:
    """``small_n`` or ``default`` from ``warehouse.profile.summarize_profile``'s summary."""
    n = int(summary["n_patients"])
    positives = int(summary.get("n_positive") or 0)
    events = min(positives, n - positives)  # the rarer class limits what can be learned
    dims = {m: int(d) for m, d in summary["dimensionality"].items()}
    n_features = max(sum(dims.values()), 1)
    reasons = []
    if n < SMALL_N_PATIENTS:
        reasons.append(f"{n} patients (< {SMALL_N_PATIENTS:,})")
    per_feature = events / n_features
    if per_feature < EVENTS_PER_FEATURE:
        reasons.append(
            f"{per_feature:.2f} events per feature ({events} in the rarer class over "
            f"{n_features:,} features; < {EVENTS_PER_FEATURE:g})"
        )
    wide = [f"{m} ({d:,} features)" for m, d in dims.items() if d > n]
    if wide:
        reasons.append(f"more features than patients (p >> n): {', '.join(wide)}")
    if reasons:
        return PresetChoice("small_n", tuple(reasons))
    return PresetChoice(
        "default",
        (f"{n:,} patients, {per_feature:.1f} events per feature, every block narrower than n",),
    )


def encoder_preset(name: str) -> EncoderConfig:
    """The encoder configuration of a concrete preset (not ``auto``)."""
    if name == "tiny":
        return EncoderConfig.tiny()
    if name == "small_n":
        # narrower encoders, more dropout and a 10x L1 on the omics layer; weight decay
        # 1e-2 (AdamW) instead of 1e-4
        return EncoderConfig(
            embedding_dim=16,
            hidden_dim=32,
            dropout=0.3,
            omics_bottleneck=8,
            omics_l1=1e-3,
            omics_screen_top_k=SMALL_N_SCREEN_TOP_K,
            train=TrainConfig(weight_decay=1e-2),
        )
    return EncoderConfig()


def fusion_preset(name: str) -> FusionConfig:
    """The fusion configuration of a concrete preset, around ``encoder_preset(name)``."""
    if name == "tiny":
        return FusionConfig.tiny()
    base = FusionConfig(encoder=encoder_preset(name))
    if name == "small_n":
        return replace(
            base,
            head_hidden=32,
            early_first_layer=32,
            train=replace(base.train, weight_decay=1e-2),
        )
    return base
