"""``promotion``: alias ``champion`` moves to the candidate version only on held-out evidence.

After ``subgroup_report``: each candidate (``fusion_assets.promotion.candidate_order``:
the recommended strategy or the clear winner, then the other of the two) is the
version of its strategy that ``predictions`` scored; the rules (``PromotionRules``)
compare it with the current champion on the same held-out patients, and the first
candidate that clears them is promoted (the later ones are not tried). Promoted or not, the reasons are in the metadata, on the candidate's
registry version (tags ``promotion.*``) and in the report folder (a "Promotion"
section in report.md / report.html, and promotion.md). The blocking check
``champion_has_evidence`` fails when the champion alias points at a version that
holds no passing promotion record nor a recorded rollback (an alias moved by
hand), so nothing downstream scores with it.
"""

import html
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd

from fusion_assets.assets.metadata import frame_table, rounded, scored_versions
from fusion_assets.automation import retraining_condition
from fusion_assets.evaluation.settings import CV
from fusion_assets.location.cohort import Cohort
from fusion_assets.models.strategies import STRATEGIES
from fusion_assets.promotion import Decision, PromotionRules, candidate_order, decide, markdown
from fusion_assets.warehouse.cohort import load_cohort, load_frames
from fusion_assets.warehouse.eval_tables import read_eval_table
from fusion_assets.warehouse.folds import read_evaluation_design
from fusion_assets.warehouse.recommend import read_recommendation
from resources import ModelStore, ModelStoreResource, ReportsResource, WarehouseResource

CHECK_NAME = "champion_has_evidence"
PASSED_TAG = "promotion.passed"
ROLLBACK_TAG = "promotion.rollback"


class PromotionConfig(dg.Config, PromotionRules):
    """The promotion rules (launchpad)."""


def champion_check(store: ModelStore) -> dg.AssetCheckResult:
    """Blocking when the champion lacks evidence; a warning when there is no champion yet."""
    champion = store.champion()
    if champion is None:
        return dg.AssetCheckResult(
            check_name=CHECK_NAME,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="No champion yet: no candidate has cleared the promotion rules.",
        )
    tags = store.version_tags(*champion)
    ok = tags.get(PASSED_TAG) == "true" or ROLLBACK_TAG in tags
    where = f"{store.name(champion[0])} v{champion[1]}"
    return dg.AssetCheckResult(
        check_name=CHECK_NAME,
        passed=ok,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"Champion {where}: " + (tags.get(ROLLBACK_TAG) or "promoted on evidence")
            if ok
            else f"Champion {where} has no promotion record nor rollback: moved by hand?"
        ),
        metadata={"champion": dg.MetadataValue.text(where)},
    )


def promote_by_hand(store: ModelStore, version: int, model: str | None = None) -> str:
    """Move ``champion`` to ``version`` of ``model`` (default: the champion's strategy) and
    record it on that version (a rollback is a recorded event, not a silent alias move)."""
    current = store.champion()
    model = model or (current[0] if current else None)
    if model is None:
        raise ValueError("No champion yet: name the strategy with --model.")
    if version not in store.versions(model):
        raise ValueError(
            f"{store.name(model)} has no version {version} (has {store.versions(model)})."
        )
    held = f"{current[0]} v{current[1]}" if current else "none"
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    store.tag_version(
        model, version, {ROLLBACK_TAG: f"set by hand at {stamp}; champion was {held}"}
    )
    store.set_champion(model, version)
    return f"champion of {store.cohort}: {store.name(model)} v{version} (was {held})"


def _champion_predictions(
    store: ModelStore, champion: tuple[str, int], design, frames, test_ids: list[str]
) -> pd.Series | None:
    """The champion version's held-out probabilities on ``test_ids`` (None: not comparable)."""
    from fusion_assets.evaluation.fold_models import StaleFoldModels, load_oof
    from fusion_assets.models.api import load_model

    name, version = champion
    if design.mode == CV:
        try:  # out-of-fold predictions exist only for the same fold plan
            folds = store.version_dir(name, version, "folds")
            oof = load_oof(folds, design.plan, design.plan_id, name)
        except StaleFoldModels:
            return None
        return oof[oof["role"] == "test"].groupby("patient_id")["prob"].mean()
    model = load_model(store.version_dir(name, version))
    prob = model.predict_proba(model.prepare(frames, test_ids))
    return pd.Series(prob, index=test_ids)


def _write_report_section(reports: Path, text: str) -> Path | None:
    """Append the promotion section to the newest report (report.md / report.html)."""
    folder = (reports / "latest").resolve()
    if not folder.is_dir():
        return None
    (folder / "promotion.md").write_text(text)
    md = folder / "report.md"
    if md.exists():  # a re-run replaces its section
        md.write_text(md.read_text().split("\n## Promotion\n")[0] + "\n" + text)
    page = folder / "report.html"
    if page.exists():
        parts = ["<h2>Promotion</h2>"]
        for line in text.splitlines()[1:]:
            if line.startswith("- "):
                parts.append(f"<li>{html.escape(line[2:])}</li>")
            elif line.strip():
                parts.append(f"<p>{html.escape(line).replace('**', '')}</p>")
        section = "".join(parts)
        body = page.read_text()
        if "<h2>Promotion</h2>" in body:
            head, tail = body.split("<h2>Promotion</h2>", 1)
            body = head + tail[tail.index("</body>") :] if "</body>" in tail else head
        page.write_text(
            body.replace("</body>", section + "</body>") if "</body>" in body else body + section
        )
    return folder / "promotion.md"


def _record(store: ModelStore, decision: Decision, version: int, run_id: str) -> None:
    store.tag_version(
        decision.candidate,
        version,
        {
            PASSED_TAG: str(decision.promoted).lower(),
            "promotion.reasons": "; ".join(decision.reasons)[:5000],
            "promotion.dagster_run_id": run_id,
            "promotion.at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )


def _metadata(decisions: list[Decision], versions: list[int], after, report: Path | None) -> dict:
    decision, version = decisions[-1], versions[-1]  # the promoted one, or the last tried
    metadata = {
        "candidate": dg.MetadataValue.text(f"{decision.candidate} v{version}"),
        "candidate_reason": dg.MetadataValue.text(decision.why_candidate),
        "candidates_tried": dg.MetadataValue.text(
            ", ".join(f"{d.candidate} v{v}" for d, v in zip(decisions, versions, strict=True))
        ),
        "promoted": dg.MetadataValue.bool(decision.promoted),
        "champion": dg.MetadataValue.text(f"{after[0]} v{after[1]}" if after else "none"),
        "reasons": dg.MetadataValue.md(
            "\n".join(f"- {d.candidate}: {r}" for d in decisions for r in d.reasons)
        ),
        "delta_auroc_vs_champion": rounded(decision.delta_auroc),
        "delta_auroc_ci_low": rounded(decision.delta_ci[0]),
    }
    if not decision.subgroups.empty:
        metadata["subgroup_deltas"] = frame_table(decision.subgroups)
    if report is not None:
        metadata["report_section"] = dg.MetadataValue.path(str(report))
    return metadata


def build_promotion_asset(cohort: Cohort) -> dg.AssetsDefinition:
    spec = cohort.spec
    config_type = cohort.config_class("promotion", PromotionConfig)

    @dg.asset(
        key=cohort.key("promotion"),
        deps=cohort.keys("subgroup_report", "subgroup_metrics", "predictions"),
        check_specs=[
            dg.AssetCheckSpec(
                CHECK_NAME,
                asset=cohort.key("promotion"),
                blocking=True,
                description="The champion alias points at a version promoted on evidence "
                "(or a recorded rollback).",
            )
        ],
        kinds={"mlflow"},
        # Part of the retraining: a retrained report is followed by its promotion decision,
        # so the sensors' re-evaluation and risk scores use the new champion.
        automation_condition=retraining_condition(cohort),
        description="One promotion decision per evaluation: moves MLflow alias 'champion' to the "
        "candidate version only if it clears the promotion rules against the current champion "
        "on the same held-out patients.",
        **cohort.asset_attributes("evaluation"),
    )
    def promotion(
        context: dg.AssetExecutionContext,
        config: config_type,
        warehouse: WarehouseResource,
        model_store: ModelStoreResource,
        reports: ReportsResource,
    ) -> dg.MaterializeResult:
        store, db = model_store.for_cohort(cohort.name), warehouse.for_cohort(cohort.name)
        with db.connect() as con:
            metrics, predictions = (
                read_eval_table(con, "subgroup_metrics"),
                read_eval_table(con, "predictions"),
            )
            patients, recommendation = load_cohort(con), read_recommendation(con)
            design, frames = read_evaluation_design(con), load_frames(con, spec)
        overall = metrics[
            (metrics["subgroup_type"] == "all") & metrics["strategy"].isin(list(STRATEGIES))
        ]
        rules = PromotionRules(**config.model_dump(include=set(PromotionRules.model_fields)))
        scored = scored_versions(context, cohort.key("predictions"))
        champion = store.champion()
        decisions: list[Decision] = []
        versions: list[int] = []
        for candidate, why in candidate_order(
            overall, recommendation[0]["strategy"] if recommendation else None
        ):
            version = scored.get(candidate) or store.version(candidate)
            test = predictions[
                (predictions["split"] == "test") & (predictions["strategy"] == candidate)
            ]
            if champion == (candidate, version):
                decision = Decision(
                    candidate, why, champion, reasons=[f"v{version} is already the champion"]
                )
            else:
                champion_prob = None
                if champion is not None:
                    champion_prob = _champion_predictions(
                        store, champion, design, frames, test["patient_id"].tolist()
                    )
                calibration = overall.set_index("strategy").loc[candidate].copy()
                calibration["strategy"] = candidate
                decision = decide(
                    candidate,
                    why,
                    test.set_index("patient_id")["prob"],
                    calibration,
                    patients,
                    champion,
                    champion_prob,
                    rules,
                )
                _record(store, decision, version, context.run.run_id)
                if decision.promoted:
                    store.set_champion(candidate, version)
            decisions.append(decision)
            versions.append(version)
            context.log.info(decision.summary())
            if decision.promoted or champion == (candidate, version):
                break
        after = store.champion()
        report = _write_report_section(reports.for_cohort(cohort.name), markdown(decisions, after))
        return dg.MaterializeResult(
            metadata=_metadata(decisions, versions, after, report),
            check_results=[champion_check(store)],
        )

    return promotion
