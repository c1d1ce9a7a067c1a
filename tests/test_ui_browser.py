"""The Dagster UI in headless Chromium: both cohorts in one code location, a click materializes.

A batch is ingested in process first (outside the landing zone, so the sensors
stay idle), then ``dagster dev`` starts on a throwaway DAGSTER_HOME with the
repository's workspace. The test checks that the code location lists the asset
groups of both shipped cohorts (synthetic and breast_cancer), each with its
assets, opens ``synthetic/aligned_patients``, clicks "Materialize" and polls the
instance until that run succeeds. Skipped only when no Chromium binary exists (``make test``
installs Debian's ``chromium``; ``playwright install`` is not used).
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest

from tests.fixtures.dagster_dev import running_dagster_dev, wait_for, write_instance_yaml

pytestmark = pytest.mark.slow

CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and Path(p).exists()),
    None,
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("No Chromium at /usr/bin/chromium (make test installs Debian's chromium).")
    pytest.importorskip("playwright.sync_api", reason="the playwright package (dev extra)")
    from fusion_assets.assets.ingest import build_ingest_assets
    from fusion_assets.cohorts.synthetic import synthesize_batch
    from resources import LandingZoneResource, WarehouseResource
    from tests.fixtures.pipeline import SYNTHETIC

    root = tmp_path_factory.mktemp("ui")
    home, data = root / "home", root / "data"
    write_instance_yaml(home)
    seed = root / "seed"  # a data folder of its own: the sensors never see this batch
    synthesize_batch(seed / "synthetic" / "landing", n_patients=100, seed=3, batch_id="ui-batch")
    partitions = dg.DynamicPartitionsDefinition(name=SYNTHETIC.landing_partitions)
    with dg.DagsterInstance.ephemeral() as scratch:
        scratch.add_dynamic_partitions(partitions.name, ["ui-batch"])
        result = dg.materialize(
            [build_ingest_assets(SYNTHETIC, partitions)],
            partition_key="ui-batch",
            instance=scratch,
            resources={
                "warehouse": WarehouseResource(data_dir=str(data)),
                "landing": LandingZoneResource(data_dir=str(seed)),
            },
        )
        assert result.success

    log = root / "dagster-dev.log"
    with running_dagster_dev(home, {"FUSION_DATA_DIR": str(data)}, log) as port:
        yield {"url": f"http://127.0.0.1:{port}", "home": home, "log": log}


STAGES = ("ingest", "align", "profile", "encoders", "fusion", "evaluation")
# Both cohorts' groups, in the order the sidebar must list them (cohort, then stage).
ALL_GROUPS = [
    f"{c}_{n}_{s}" for c in ("breast_cancer", "synthetic") for n, s in enumerate(STAGES, 1)
]
GROUPS = {  # a few groups, each with one of its assets (the list shows "<cohort> / <name>")
    "synthetic_1_ingest": "synthetic / raw_oracle",
    "synthetic_4_encoders": "synthetic / modality_encoder",
    "breast_cancer_1_ingest": "breast_cancer / raw_expression",
    "breast_cancer_6_evaluation": "breast_cancer / subgroup_report",
}


def _aligned_patients_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    key = dg.AssetKey(["synthetic", "aligned_patients"])
    return [r for r in instance.get_runs() if r.asset_selection and key in r.asset_selection]


def test_catalog_shows_assets_and_materialize_click_runs(ui):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect, sync_playwright

    instance = dg.DagsterInstance.from_config(str(ui["home"]))
    before = {r.run_id for r in _aligned_patients_runs(instance)}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            # One code location, both cohorts: the lineage sidebar lists every group, in
            # stage order per cohort.
            page.goto(f"{ui['url']}/asset-groups/synthetic_1_ingest")
            heights = []
            for group in ALL_GROUPS:
                item = page.get_by_text(group, exact=True).first
                expect(item).to_be_visible(timeout=60_000)
                heights.append(item.bounding_box()["y"])
            assert heights == sorted(heights), "the sidebar does not list the groups in order"
            page.screenshot(path=str(ui["home"].parent / "lineage.png"))
            # Each group's page lists its assets.
            for group, asset in GROUPS.items():
                page.goto(f"{ui['url']}/locations/fusion_assets/asset-groups/{group}/list")
                expect(page.get_by_text(group).first).to_be_visible(timeout=60_000)
                expect(page.get_by_text(asset, exact=True).first).to_be_visible(timeout=60_000)

            page.goto(f"{ui['url']}/assets/synthetic/aligned_patients")
            # The accessible name carries the icon's name: "materialization Materialize".
            button = page.get_by_role("button", name=re.compile(r"^(\w+ )?Materialize$")).first
            expect(button).to_be_enabled(timeout=60_000)
            t0 = time.perf_counter()
            button.click()
            # The seed batch was ingested outside this instance, so the UI warns that
            # raw_patients was never materialized here; the warehouse has it: confirm.
            confirm = page.get_by_role("button", name="Confirm", exact=True)
            try:
                confirm.wait_for(state="visible", timeout=5_000)
                confirm.click()
            except PlaywrightTimeout:
                pass
            # Launching shows a toast linking to the run; a partition dialog would be a failure here.
            run = wait_for(
                "a run of aligned_patients launched from the UI",
                lambda: [r for r in _aligned_patients_runs(instance) if r.run_id not in before],
                60,
                None,
                ui["log"],
            )[0]
        finally:
            browser.close()

    def finished():
        status = instance.get_run_by_id(run.run_id).status
        assert status != dg.DagsterRunStatus.FAILURE, f"run {run.run_id} failed"
        return status == dg.DagsterRunStatus.SUCCESS

    wait_for("the UI-launched run to succeed", finished, 180, None, ui["log"], 2)
    print(f"\n[ui] click → aligned_patients materialized in {time.perf_counter() - t0:.1f} s")
