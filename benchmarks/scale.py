"""Benchmark: the whole pipeline (ingest → report, default settings) at 5k, 20k and 100k patients.

Each size runs in a fresh subprocess with its own ``FUSION_DATA_DIR`` and
``DAGSTER_HOME`` under ``--work-dir`` (git-ignored ``tmp/scale`` by default,
removed afterwards unless ``--keep``): the default synthetic cohort of N
patients is written to the landing zone (timed apart: not a pipeline stage),
then ``fusion_assets.demo.materialize_cohort`` runs every stage as
``fusion-assets demo`` does. Per stage (asset group, partition by partition):
wall and CPU seconds, peak RSS of the process during that stage (VmRSS sampled
every 50 ms by a thread) and the seconds of each Dagster step; then the ratio of
each stage's time between consecutive sizes, flagged when it grows faster than
the number of patients. Results: benchmarks/results/scale.json and .md.

A size that runs past ``--time-limit`` seconds (or over ``--max-rss-gib``) is
stopped; the stages it finished are kept and the record says where it stopped.

    python benchmarks/scale.py                               # 5k, 20k, 100k
    python benchmarks/scale.py --sizes 5000 20000 --time-limit 2700
    python benchmarks/scale.py --sizes 100000 --merge        # re-measure one size
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from measure import REPO, StageMemory, load_average, rss_mib

RESULTS = Path(__file__).parent / "results"
# a stage may take this much longer than linear (× patients) before it is flagged:
# fixed costs make small stages sublinear, and a shared machine adds noise
SUPERLINEAR_TOLERANCE = 1.25
DAGSTER_YAML = "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"


class StageRecorder:
    """Turns ``materialize_pipeline``'s log lines into per-stage measurements.

    ``[pipeline] <stage> ...`` opens a stage and ``[pipeline] <stage> done in …
    (run <id>)`` closes it; everything measured is appended to ``progress`` (a
    JSON file rewritten after every stage, so a stopped run keeps what it did).
    """

    def __init__(self, memory: StageMemory, progress: Path, instance) -> None:
        self.memory, self.progress, self.instance = memory, progress, instance
        self.stages: list[dict] = []
        self.extra: dict = {}
        self.current: str | None = None
        self.wall = self.cpu = 0.0

    def __call__(self, message: str) -> None:
        text = message.removeprefix("[pipeline] ")
        if text.endswith(" ..."):
            self.memory.mark()
            self.current, self.wall, self.cpu = text[:-4], time.perf_counter(), time.process_time()
            # what a stopped run was doing, and since when (epoch seconds)
            self.save(running={"stage": self.current, "since": time.time()})
            return
        if self.current is None or not text.startswith(self.current + " done"):
            return
        run = re.search(r"\(run ([0-9a-f-]+)\)", text)
        self.stages.append(
            {
                "stage": self.current,
                "wall_s": round(time.perf_counter() - self.wall, 2),
                "cpu_s": round(time.process_time() - self.cpu, 2),
                "peak_rss_mib": self.memory.mark(),
                "load_average": load_average(),
                "steps_s": _step_seconds(self.instance, run.group(1)) if run else {},
            }
        )
        self.current = None
        self.save(running=None)

    def save(self, **extra: object) -> None:
        """Rewrite the progress file; ``extra`` keys are kept for later saves too."""
        self.extra.update(extra)
        partial = self.progress.with_suffix(".partial")
        partial.write_text(json.dumps({"stages": self.stages, **self.extra}, indent=1))
        partial.replace(self.progress)  # the parent never reads a half-written file


def _step_seconds(instance, run_id: str) -> dict[str, float]:
    """Seconds from STEP_START to STEP_SUCCESS of every step of a Dagster run."""
    import dagster as dg

    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}
    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for entry in instance.all_logs(run_id, of_type=kinds):
        event = entry.dagster_event
        if event.event_type == dg.DagsterEventType.STEP_START:
            started[event.step_key] = entry.timestamp
        elif event.step_key in started:
            seconds[event.step_key] = round(entry.timestamp - started[event.step_key], 2)
    return seconds


def run_size(n_patients: int, progress: Path) -> None:
    """In the child: land N synthetic patients, then materialize the pipeline stage by stage."""
    from fusion_assets.cohorts.synthetic import synthesize_batch
    from fusion_assets.demo import default_instance, materialize_cohort
    from fusion_assets.location.build import build_location, location_resources
    from fusion_assets.location.component import declared_cohorts
    from resources.paths import DATA_DIR_ENV, DEFAULT_DATA_DIR

    with StageMemory() as memory:
        cohort = declared_cohorts()["synthetic"]
        resources = location_resources(data_dir=os.environ.get(DATA_DIR_ENV, DEFAULT_DATA_DIR))
        zone = resources["landing"].for_cohort(cohort.name)
        t = time.perf_counter()
        synthesize_batch(zone.root, n_patients=n_patients, seed=0, batch_id="synthetic-default")
        generate = {"wall_s": round(time.perf_counter() - t, 2), "peak_rss_mib": memory.mark()}
        instance = default_instance()
        recorder = StageRecorder(memory, progress, instance)
        recorder.save(generate=generate)
        defs = build_location([cohort], resources)
        t = time.perf_counter()
        materialize_cohort(defs, cohort, instance, zone.ready_batches(), None, recorder)
        recorder.save(pipeline_wall_s=round(time.perf_counter() - t, 1), completed=True)


def _vm_hwm_mib(pid: int) -> float:
    """The peak RSS (VmHWM) of a running process, MiB (nan once it has exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else float("nan")


def _show_progress(progress: Path, shown: int) -> int:
    """Print the stages finished since the last call; the number shown so far."""
    try:
        stages = json.loads(progress.read_text())["stages"]
    except (OSError, ValueError, KeyError):
        return shown
    for s in stages[shown:]:
        print(
            f"  {s['stage']}: {s['wall_s']} s ({s['cpu_s']} s CPU), "
            f"peak RSS {s['peak_rss_mib']:,.0f} MiB, load {s['load_average'][0]}",
            flush=True,
        )
    return len(stages)


def _run_child(n: int, work: Path, time_limit: float, max_rss_gib: float) -> dict:
    """One size in a fresh process; stopped past the time limit or the RSS limit."""
    data, home = work / "data", work / "dagster_home"
    shutil.rmtree(work, ignore_errors=True)
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    progress = work / "progress.json"
    env = {**os.environ, "FUSION_DATA_DIR": str(data), "DAGSTER_HOME": str(home)}
    env["PYTHONPATH"] = str(REPO)
    command = [sys.executable, __file__, "--child", str(n), str(progress)]
    started, peak, stopped, shown = time.perf_counter(), 0.0, None, 0
    with open(work / "child.log", "w") as log:
        child = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=log, start_new_session=True
        )
        while child.poll() is None:
            time.sleep(1.0)
            peak = max(peak, _vm_hwm_mib(child.pid))
            shown = _show_progress(progress, shown)
            elapsed = time.perf_counter() - started
            if elapsed > time_limit or peak > max_rss_gib * 1024:
                stopped = f"time limit {time_limit:.0f} s" if elapsed > time_limit else "RSS limit"
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
    _show_progress(progress, shown)
    if child.returncode and not stopped:
        print((work / "child.log").read_text()[-3000:], file=sys.stderr)
    record = json.loads(progress.read_text()) if progress.exists() else {"stages": []}
    record.update(
        {
            "n_patients": n,
            "wall_s_including_startup": round(time.perf_counter() - started, 1),
            "peak_rss_mib": round(peak, 1),
            "returncode": child.returncode,
            "stopped": stopped,
        }
    )
    if stopped or child.returncode:
        running = record.pop("running", None)
        done = [s["stage"] for s in record["stages"]]
        record["stopped_in"] = (
            f"in {running['stage']!r}, {time.time() - running['since']:.0f} s into it"
            if running
            else (f"after {done[-1]!r}" if done else "before the first stage")
        )
    record.pop("running", None)
    return record


def _group(stage: str) -> str:
    """The stage without its partition: ``fit one encoder per modality [ehr]`` → ``fit one …``."""
    return re.sub(r"\s*\[[^\]]*\]$", "", stage)


def _growth(sizes: list[dict]) -> list[dict]:
    """Per stage and pair of consecutive sizes: time ratios, the growth exponent, a flag.

    The exponent is log(time ratio) / log(patient ratio) on CPU seconds (less moved by
    the neighbours than wall time): 1 is linear; above log(tolerance × patients ratio)
    / log(patients ratio) the stage is flagged as worse than linear.
    """
    import math

    rows = []
    for small, big in zip(sizes, sizes[1:], strict=False):
        factor = big["n_patients"] / small["n_patients"]
        before = {s["stage"]: s for s in small["stages"]}
        for stage in big["stages"]:
            old = before.get(stage["stage"])
            if old is None:
                continue
            cpu = stage["cpu_s"] / max(old["cpu_s"], 1e-9)
            wall = stage["wall_s"] / max(old["wall_s"], 1e-9)
            rows.append(
                {
                    "stage": stage["stage"],
                    "from": small["n_patients"],
                    "to": big["n_patients"],
                    "patients_ratio": round(factor, 2),
                    "wall_ratio": round(wall, 2),
                    "cpu_ratio": round(cpu, 2),
                    "exponent": round(math.log(max(cpu, 1e-9)) / math.log(factor), 2),
                    "worse_than_linear": cpu > factor * SUPERLINEAR_TOLERANCE,
                }
            )
    return rows


def _by_group(stages: list[dict]) -> dict[str, dict]:
    """Stage measurements summed over partitions (peak RSS: the largest)."""
    groups: dict[str, dict] = {}
    for s in stages:
        g = groups.setdefault(
            _group(s["stage"]), {"wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mib": 0.0}
        )
        g["wall_s"] = round(g["wall_s"] + s["wall_s"], 2)
        g["cpu_s"] = round(g["cpu_s"] + s["cpu_s"], 2)
        g["peak_rss_mib"] = max(g["peak_rss_mib"], s["peak_rss_mib"])
    return groups


def _markdown(record: dict) -> str:
    commands = list(dict.fromkeys(size["command"] for size in record["sizes"]))
    lines = [
        "# Scale benchmark: the whole pipeline by cohort size",
        "",
        "`" + "`, then `".join(commands) + "` on a shared machine with "
        f"{record['cores']} cores (other agents' work runs beside it: wall seconds are "
        "pessimistic, CPU seconds are the pipeline process's own; the load average of each "
        "run is in the table). Default settings, the default synthetic cohort, "
        "`fusion_assets.demo.materialize_cohort` as `fusion-assets demo` runs it, one fresh "
        "process per size. Targets (issue 14): 100k patients end to end under 30 min and "
        "8 GiB on 2 cores.",
        "",
        "| patients | completed | pipeline wall s | generate s (not a stage) | peak RSS MiB "
        "| run at | load average start → end | stopped |",
        "|---:|---|---:|---:|---:|---|---|---|",
    ]
    for size in record["sizes"]:
        wall = size.get("pipeline_wall_s") or f"> {size['wall_s_including_startup']}"
        lines.append(
            f"| {size['n_patients']:,} | {'yes' if size.get('completed') else 'no'} | {wall} "
            f"| {size.get('generate', {}).get('wall_s', '–')} | {size['peak_rss_mib']:,.0f} "
            f"| {size['date']} | {size['load_average_start'][0]} → "
            f"{size['load_average_end'][0]} | {size.get('stopped') or ''} "
            f"{size.get('stopped_in', '')} |"
        )
    lines += _stage_table(record["sizes"])
    lines += _growth_table(record["growth"])
    return "\n".join(lines) + "\n"


def _stage_table(sizes: list[dict]) -> list[str]:
    header = " | ".join(f"{s['n_patients']:,}: wall s / CPU s / peak RSS MiB" for s in sizes)
    lines = [
        "",
        "## Per stage",
        "",
        f"| stage | {header} | slowest steps at the largest size (s) |",
        "|---|" + "---:|" * len(sizes) + "---|",
    ]
    names = list(dict.fromkeys(s["stage"] for size in sizes for s in size["stages"]))
    for name in names:
        cells, steps = [], ""
        for size in sizes:
            stage = next((s for s in size["stages"] if s["stage"] == name), None)
            cells.append(
                f"{stage['wall_s']} / {stage['cpu_s']} / {stage['peak_rss_mib']:,.0f}"
                if stage
                else "–"
            )
            if stage and stage["steps_s"]:
                top = sorted(stage["steps_s"].items(), key=lambda kv: -kv[1])[:3]
                steps = ", ".join(f"{k} {v}" for k, v in top)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {steps} |")
    return lines


def _growth_table(growth: list[dict]) -> list[str]:
    flagged = [g for g in growth if g["worse_than_linear"]]
    lines = [
        "",
        "## Growth between sizes",
        "",
        "Time ratio of each stage between consecutive sizes; exponent = log(CPU ratio) / "
        f"log(patients ratio) (1: linear). **Flagged** when the CPU ratio exceeds "
        f"{SUPERLINEAR_TOLERANCE} × the patients ratio (the report's bootstrap draws a fixed "
        "number of resamples, each linear in patients).",
        "",
        "| stage | sizes | patients × | wall × | CPU × | exponent | worse than linear |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for g in growth:
        lines.append(
            f"| {g['stage']} | {g['from']:,} → {g['to']:,} | {g['patients_ratio']} "
            f"| {g['wall_ratio']} | {g['cpu_ratio']} | {g['exponent']} "
            f"| {'**yes**' if g['worse_than_linear'] else ''} |"
        )
    lines += ["", f"Stages flagged: {len(flagged)}."]
    lines += [
        f"- {g['stage']} ({g['from']:,} → {g['to']:,}): CPU × {g['cpu_ratio']}" for g in flagged
    ]
    return lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 100000])
    parser.add_argument("--work-dir", type=Path, default=REPO / "tmp" / "scale")
    parser.add_argument("--time-limit", type=float, default=2700.0, help="seconds per size")
    parser.add_argument("--max-rss-gib", type=float, default=10.0)
    parser.add_argument("--keep", action="store_true", help="keep each size's data folder")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the recorded sizes that this run does not measure again",
    )
    parser.add_argument("--no-record", action="store_true", help="print only")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    return parser


def _measure_size(n: int, args: argparse.Namespace) -> dict:
    """One size in a child process, with when and under which load it ran."""
    print(f"== {n:,} patients", flush=True)
    command = " ".join(["python", "benchmarks/scale.py", *sys.argv[1:]])
    started = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "load_average_start": load_average()}
    size = _run_child(n, args.work_dir / str(n), args.time_limit, args.max_rss_gib)
    size.update(command=command, **started, load_average_end=load_average())
    size["groups"] = _by_group(size["stages"])
    if not args.keep:
        shutil.rmtree(args.work_dir / str(n), ignore_errors=True)
    return size


def _recorded_sizes(path: Path) -> list[dict]:
    """The sizes of a results file; a file written before sizes carried their own command,
    date and load average gets them from the run's (which measured every size)."""
    record = json.loads(path.read_text())
    run = {k: record[k] for k in RUN_FIELDS if k in record}
    run.setdefault("load_average_start", run.get("load_average_end", []))
    return [{**run, **size} for size in record["sizes"]]


RUN_FIELDS = ("command", "date", "load_average_start", "load_average_end")


def main() -> None:
    args = _parser().parse_args()
    if args.child:
        run_size(int(args.child[0]), Path(args.child[1]))
        return
    sizes = [_measure_size(n, args) for n in sorted(args.sizes)]
    recorded = RESULTS / "scale.json"
    if args.merge and recorded.exists():
        kept = [s for s in _recorded_sizes(recorded) if s["n_patients"] not in args.sizes]
        sizes = sorted(kept + sizes, key=lambda s: s["n_patients"])
    record = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "benchmark_rss_mib": round(rss_mib()),
        "sizes": sizes,
        "growth": _growth(sizes),
    }
    text = _markdown(record)
    print(text)
    if not args.no_record:
        RESULTS.mkdir(exist_ok=True)
        recorded.write_text(json.dumps(record, indent=2) + "\n")
        (RESULTS / "scale.md").write_text(text)


if __name__ == "__main__":
    main()
