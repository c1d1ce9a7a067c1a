"""The ``fusion-assets`` command line: synthetic batches, the demo run, your own cohort,
promotion and risk scores."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from resources.paths import DATA_DIR_ENV, DEFAULT_DATA_DIR, cohort_dir

DEFAULT_COHORT = "synthetic"


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir).resolve()


def _landing(args: argparse.Namespace, cohort: str = DEFAULT_COHORT) -> Path:
    """``--landing`` if given, else the cohort's landing zone under the data folder."""
    return Path(args.landing) if args.landing else cohort_dir(args.data_dir, cohort) / "landing"


def _synth(args: argparse.Namespace) -> None:
    from fusion_assets.cohorts.synthetic import synthesize_batch

    with _user_errors():
        batch_dir = synthesize_batch(
            _landing(args),
            n_patients=args.patients,
            regime=args.regime,
            missingness=args.missingness,
            seed=args.seed,
            batch_id=args.batch_id,
            genomics_format=args.genomics_format,
        )
    print(f"Wrote landing batch {batch_dir}")


def _land(args: argparse.Namespace) -> None:
    from datetime import UTC, datetime

    from fusion_assets.cohorts.synthetic import synthesize_batch
    from fusion_assets.location.component import declared_cohorts

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    seed = args.seed if args.seed is not None else int(stamp[-6:])
    declared = declared_cohorts().get(args.cohort)
    # The cohort's own generator settings (panel size, availability …), so the batch fits its spec.
    settings = declared.synthetic.generator_settings() if declared and declared.synthetic else {}
    with _user_errors():
        batch_dir = synthesize_batch(
            _landing(args, args.cohort),
            n_patients=args.patients,
            seed=seed,
            batch_id=f"batch-{stamp}",
            **settings,
        )
    print(f"Landed {batch_dir} ({args.patients} patients); the landing sensor picks it up.")


def _demo(args: argparse.Namespace) -> None:
    from fusion_assets.demo import run_demo

    run_demo(_data_dir(args), cohort_name=args.cohort, fast=args.fast)


def _study(args: argparse.Namespace) -> None:
    from fusion_assets.demo import FAST_RUN_CONFIG
    from fusion_assets.study.analysis import write_answer
    from fusion_assets.study.grid import select_cells
    from fusion_assets.study_runner import read_study, run_study

    out = Path(args.out) if args.out else _data_dir(args) / "study"
    cells = select_cells(args.grid, args.only)
    ran = run_study(
        cells,
        out,
        workers=args.workers,
        run_config=FAST_RUN_CONFIG if args.fast else None,
        keep_cells=args.keep_cells,
    )
    header = [
        f"`fusion-assets study --grid {args.grid}`: {len(cells)} cells; this run finished "
        f"{ran['finished']} ({ran['failed']} failed) in {ran['wall_seconds']:.0f} s.",
    ]
    md = write_answer(out, read_study(out), header)
    print(f"[study] answer: {md} (and study.png beside it; tables in {out / 'results.duckdb'})")
    if ran["failed"]:
        sys.exit(1)


def _user_error(exc: Exception) -> None:
    """A user's spec or data problem: the message, no traceback."""
    print(str(exc), file=sys.stderr)
    sys.exit(2)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Spec, data, identifier and landing-zone problems end the command with their message."""
    from fusion_assets.cohorts.importer import CohortImportError
    from fusion_assets.cohorts.spec_file import SpecError
    from fusion_assets.identifiers import InvalidIdentifier
    from fusion_assets.landing_zone import BatchNotReady, LandingConflict
    from fusion_assets.warehouse.quarantine import BatchValidationError

    try:
        yield
    except (
        SpecError,
        CohortImportError,
        InvalidIdentifier,
        LandingConflict,
        BatchNotReady,
        BatchValidationError,
    ) as exc:
        _user_error(exc)


def _import(args: argparse.Namespace) -> None:
    from fusion_assets.cohorts.spec_file import read_spec_file
    from fusion_assets.own_cohort import import_spec

    with _user_errors():
        landing = _landing(args, read_spec_file(args.spec).name)
        import_spec(Path(args.spec), landing, args.batch_id, replace=args.replace)


def _run(args: argparse.Namespace) -> None:
    import dagster as dg

    from fusion_assets.own_cohort import run_spec

    with _user_errors():
        try:
            run_spec(
                Path(args.spec),
                _data_dir(args),
                args.batch_id,
                fast=args.fast,
                replace=args.replace,
            )
        except dg.Failure as exc:  # e.g. the batch failed validation and was quarantined
            _user_error(RuntimeError(exc.description or str(exc)))


def _promote(args: argparse.Namespace) -> None:
    """Move the champion alias by hand (a rollback), recorded on the version."""
    from fusion_assets.assets.promotion import promote_by_hand
    from fusion_assets.location.build import location_resources

    resources = location_resources(str(_data_dir(args)), os.environ.get("MLFLOW_TRACKING_URI"))
    store = resources["model_store"].for_cohort(args.cohort)
    try:
        text = promote_by_hand(store, args.version, args.model)
    except ValueError as exc:
        _user_error(exc)
    print(text)
    _record_promotion(args.cohort, store.champion(), text)


def _record_promotion(cohort: str, champion: tuple[str, int] | None, text: str) -> None:
    """The hand promotion as a ``promotion`` materialization in the Dagster instance: the
    asset's history shows it, and the re-evaluation sensor (which reads the champion from
    the event log, not from MLflow) includes risk_scores from the next batch on."""
    import dagster as dg

    from fusion_assets.demo import default_instance

    if not os.environ.get("DAGSTER_HOME") or champion is None:
        return  # no instance to record it in (the registry tag records it regardless)
    default_instance().report_runless_asset_event(
        dg.AssetMaterialization(
            dg.AssetKey([cohort, "promotion"]),
            metadata={
                "champion": dg.MetadataValue.text(f"{champion[0]} v{champion[1]}"),
                "promoted": dg.MetadataValue.bool(True),
                "reasons": dg.MetadataValue.text(text),
                "set_by_hand": dg.MetadataValue.bool(True),
            },
        )
    )


def _score_cohort(args: argparse.Namespace):
    """The cohort ``score`` works on: the spec's (``--spec``) or a declared one (``--cohort``)."""
    from fusion_assets.location.cohort import Cohort, cohort_name

    if args.spec:
        from fusion_assets.cohorts.spec_file import read_spec_file

        spec = read_spec_file(args.spec)
        return Cohort(cohort_name(spec.name), spec)
    from fusion_assets.location.component import declared_cohorts

    cohorts = declared_cohorts()
    if args.cohort not in cohorts:
        raise ValueError(
            f"No cohort {args.cohort!r} in fusion_assets/defs/ (have {sorted(cohorts)}); "
            "for your own cohort pass --spec cohort.yaml."
        )
    return cohorts[args.cohort]


def _score(args: argparse.Namespace) -> None:
    """Materialize ``risk_scores`` for one landing batch and say where the rows went."""
    from fusion_assets.demo import default_instance
    from fusion_assets.identifiers import check_batch_id
    from fusion_assets.location.build import build_location, location_resources

    with _user_errors():
        batch_id = check_batch_id(args.batch)
        try:
            cohort = _score_cohort(args)
        except ValueError as exc:
            _user_error(exc)
    resources = location_resources(str(_data_dir(args)), os.environ.get("MLFLOW_TRACKING_URI"))
    job = build_location([cohort], resources).resolve_job_def(cohort.job("reevaluate_batch"))
    instance = default_instance()
    if batch_id not in instance.get_dynamic_partitions(cohort.landing_partitions):
        # The batch may have been ingested under another instance (a demo without DAGSTER_HOME).
        instance.add_dynamic_partitions(cohort.landing_partitions, [batch_id])
    key = cohort.key("risk_scores")
    result = job.execute_in_process(
        partition_key=batch_id,
        instance=instance,
        asset_selection=[key],
        raise_on_error=False,
        tags={"fusion_assets/source": "cli"},
    )
    if not result.success:
        failure = next(e for e in result.all_events if e.is_step_failure)
        data = failure.step_failure_data
        user = data.user_failure_data
        _user_error(RuntimeError(user.description if user else data.error.message))
    metadata = result.asset_materializations_for_node(cohort.op("risk_scores"))[0].metadata
    warehouse = resources["warehouse"].for_cohort(cohort.name).path
    flagged = metadata["flagged"].value
    print(
        f"risk scores of batch {batch_id}: {metadata['dagster/row_count'].value} patients in "
        f"{metadata['table'].value} of {warehouse}, scored by {metadata['model'].value} "
        f"({metadata['model_uri'].value}); flagged (rare or unseen pattern): {flagged}"
    )


def _spec_schema(args: argparse.Namespace) -> None:
    import json

    from fusion_assets.cohorts.spec_file import spec_json_schema

    text = json.dumps(spec_json_schema(), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
        print(f"Wrote the cohort spec JSON Schema to {args.output}")
    else:
        sys.stdout.write(text)


def _add_cohort_arguments(command: argparse.ArgumentParser) -> None:
    """What ``import`` and ``run`` both read: the spec, the batch id, ``--replace``."""
    command.add_argument("--spec", required=True, help="cohort spec YAML (see docs/own-data.md)")
    command.add_argument("--batch-id", default=None, help="default: the cohort name")
    command.add_argument(
        "--replace",
        action="store_true",
        help="replace a landing batch of that id with other data (the old copy is kept until "
        "the new one is ingested)",
    )


def _add_fast(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--fast", action="store_true", help="tiny networks and fewer resamples: a smoke run"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fusion-assets", description=__doc__)
    parser.add_argument(
        "--data-dir",
        default=os.environ.get(DATA_DIR_ENV, DEFAULT_DATA_DIR),
        help=f"the data folder, one sub-folder per cohort (default ${DATA_DIR_ENV} or ./data)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    landing_help = "landing zone folder (default: <data-dir>/<cohort>/landing)"

    synth = commands.add_parser("synth", help="write one synthetic landing batch")
    synth.add_argument("--landing", default=None, help=landing_help)
    synth.add_argument("--patients", type=int, default=5000)
    synth.add_argument(
        "--regime", choices=["independent", "correlated", "synergy"], default="correlated"
    )
    synth.add_argument("--missingness", choices=["complete", "mcar", "mar", "mnar"], default="mar")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--batch-id", default=None, help="default: derived from the settings")
    synth.add_argument("--genomics-format", choices=["dense", "sparse"], default="dense")
    synth.set_defaults(func=_synth)

    land = commands.add_parser("land", help="drop a new synthetic batch into the landing zone")
    land.add_argument("--landing", default=None, help=landing_help)
    land.add_argument("--cohort", default=DEFAULT_COHORT, help="a synthetic cohort of the location")
    land.add_argument("--patients", type=int, default=500)
    land.add_argument("--seed", type=int, default=None)
    land.set_defaults(func=_land)

    demo = commands.add_parser(
        "demo", help="land the default synthetic cohort and materialize every asset"
    )
    demo.add_argument(
        "--cohort", default=DEFAULT_COHORT, help="a synthetic cohort of fusion_assets/defs/"
    )
    _add_fast(demo)
    demo.set_defaults(func=_demo)

    from fusion_assets.study.grid import GRIDS  # pure and light: pydantic only

    study = commands.add_parser(
        "study",
        help="test the decision matrix: train every strategy on a grid of synthetic "
        "deployment realities (resumable)",
    )
    study.add_argument("--grid", choices=sorted(GRIDS), default="designed", help="the cells to run")
    study.add_argument("--out", default=None, help="study folder (default <data-dir>/study)")
    study.add_argument(
        "--workers",
        type=int,
        default=max(1, (os.cpu_count() or 1) // 2),
        help="cells run at once, each in its own process (default: half the cores)",
    )
    study.add_argument(
        "--only", nargs="*", default=None, help="run only cells whose id starts with one of these"
    )
    study.add_argument(
        "--keep-cells", action="store_true", help="keep each cell's warehouse and MLflow store"
    )
    _add_fast(study)
    study.set_defaults(func=_study)

    imp = commands.add_parser(
        "import", help="import your own cohort (a spec file) as a landing batch"
    )
    _add_cohort_arguments(imp)
    imp.add_argument("--landing", default=None, help=landing_help)
    imp.set_defaults(func=_import)

    run = commands.add_parser(
        "run", help="import your own cohort and materialize every asset on it"
    )
    _add_cohort_arguments(run)
    _add_fast(run)
    run.set_defaults(func=_run)

    promote = commands.add_parser(
        "promote", help="move the champion alias to a registered version (rollback), recorded"
    )
    promote.add_argument("--version", type=int, required=True, help="the registered version")
    promote.add_argument("--cohort", default=DEFAULT_COHORT)
    promote.add_argument("--model", default=None, help="strategy (default: the champion's)")
    promote.set_defaults(func=_promote)

    score = commands.add_parser(
        "score",
        help="write the champion's risk scores of one landing batch (eval.risk_scores)",
    )
    score.add_argument("--batch", required=True, help="the landing batch id (its partition)")
    which = score.add_mutually_exclusive_group()
    which.add_argument("--cohort", default=DEFAULT_COHORT, help="a cohort of fusion_assets/defs/")
    which.add_argument("--spec", default=None, help="or your own cohort's spec YAML")
    score.set_defaults(func=_score)

    schema = commands.add_parser(
        "spec-schema", help="print the JSON Schema of cohort spec files (for editors)"
    )
    schema.add_argument("--output", default=None, help="write it to this file instead")
    schema.set_defaults(func=_spec_schema)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
