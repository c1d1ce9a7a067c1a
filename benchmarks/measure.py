"""Measuring helpers shared by the benchmarks: CPU and wall time, cProfile summaries,
resident memory sampled per stage, and a checkout of an older commit to time against.

On a shared machine wall time depends on the neighbours; process CPU time much less
(one torch thread per fit), so comparisons between code paths use CPU-time ratios
measured in the same run.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import re
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# (file name, function) whose cumulative time is reported as a phase of a fit; a
# phase absent from a code path (e.g. ``TensorInputs.batch`` before it existed) is 0
PHASES: dict[str, tuple[tuple[str, str], ...]] = {
    "minibatch steps": (("training.py", "_train_epoch"),),
    "validation passes": (("training.py", "score"), ("api.py", "predict_logits")),
    "batch building": (("batch.py", "make_batch"), ("batch.py", "batch")),
    "best-state copies": (("training.py", "record"),),
    "preprocessing": (("inputs.py", "prepare"), ("inputs.py", "fit_modality")),
    "boosting: weighted binning": (("stats.py", "_weighted_percentile"),),
    "first-use imports": (("<frozen importlib._bootstrap>", "_find_and_load"),),
}


@dataclass
class Timed:
    """What ``timed`` measured for one call."""

    value: Any
    wall_s: float
    cpu_s: float
    profile: dict | None = None


def timed(fn: Callable[[], Any], profile: bool = False) -> Timed:
    """Call ``fn``; wall and process CPU seconds, and a cProfile summary if asked."""
    profiler = cProfile.Profile() if profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    try:
        value = fn()
    finally:
        if profiler is not None:
            profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    summary = summarize_profile(profiler, wall) if profiler is not None else None
    return Timed(value, round(wall, 2), round(cpu, 2), summary)


def _short(key: tuple[str, int, str]) -> str:
    """A readable name for a profiled function: ``torch.conv2d``, ``training.py:_train_epoch``."""
    file, _, name = key
    builtin = re.fullmatch(r"<built-in method (\S+)>", name)
    if builtin:
        return builtin.group(1)
    method = re.fullmatch(r"<method '(\w+)' of '([\w.]+)' objects>", name)
    if method:
        return f"{method.group(2).rsplit('.', 1)[-1]}.{method.group(1)}"
    return f"{Path(file).name}:{name}" if file != "~" else name


def _phase_seconds(stats: dict, targets: tuple[tuple[str, str], ...]) -> float:
    """Cumulative seconds of the ``targets`` functions, a call from one to another counted once."""

    def matches(key: tuple[str, int, str]) -> bool:
        return (Path(key[0]).name, key[2]) in targets

    total = 0.0
    for key, (_, _, _, cumulative, callers) in stats.items():
        if matches(key):
            nested = sum(v[3] for c, v in callers.items() if c != key and matches(c))
            total += cumulative - nested
    return total


def summarize_profile(profiler: cProfile.Profile, wall_s: float, top: int = 6) -> dict:
    """Top self-time functions and the cumulative time of each of ``PHASES``."""
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    phases = {phase: _phase_seconds(stats, targets) for phase, targets in PHASES.items()}
    ranked = sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]
    return {
        "profiled_wall_s": round(wall_s, 2),
        "phases_s": {k: round(v, 2) for k, v in phases.items()},
        "top_self_time": [
            {"function": _short(key), "seconds": round(v[2], 2), "share": round(v[2] / wall_s, 3)}
            for key, v in ranked
        ],
    }


def checkout(ref: str, directory: Path) -> Path:
    """The tracked files of commit ``ref`` of this repository, extracted under ``directory``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref],
        check=True,
        capture_output=True,
    ).stdout
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    return directory


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def rss_mib() -> float:
    """Current resident set size of this process (VmRSS), MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class StageMemory:
    """Samples this process's RSS in a thread; the peak since the last ``mark``.

    ``ru_maxrss`` only ever grows, so it cannot tell one stage's peak from an
    earlier one; sampling VmRSS every ``interval_s`` can (a spike shorter than
    the interval may be missed).
    """

    interval_s: float = 0.05
    peak: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> StageMemory:
        self.peak = rss_mib()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, rss_mib())

    def mark(self) -> float:
        """The peak RSS (MiB) since the previous mark; the next interval starts now."""
        peak, self.peak = max(self.peak, rss_mib()), rss_mib()
        return round(peak, 1)
