"""What a logged pyfunc model ships so it loads outside this checkout.

The code: the ``fusion_assets`` package itself (MLflow ``code_paths`` puts it on the
loader's ``sys.path``). The requirements: the packages that code imports when it
scores, pinned to the versions installed where it was fitted (``fusion_assets`` is on
no package index, so it is never a requirement). The code version: the git commit of
the checkout (``-dirty`` with uncommitted changes), else the package version.
Pure code, no mlflow import.
"""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

import fusion_assets

# Distributions the prediction path imports (models.api and the kinds' preprocessing).
SCORING_DISTRIBUTIONS = (
    "torch",
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "scipy",
    "pydantic",
    "duckdb",
)


def package_dir() -> Path:
    return Path(fusion_assets.__file__).resolve().parent


def code_paths() -> list[str]:
    return [str(package_dir())]


def pip_requirements() -> list[str]:
    """``name==version`` for every scoring dependency (a local build suffix dropped:
    ``torch==2.13.0+cpu`` is on no index as such)."""
    pins = []
    for name in SCORING_DISTRIBUTIONS:
        version = metadata.version(name).split("+")[0]
        pins.append(f"{name}=={version}")
    return pins


@functools.cache
def code_version() -> str:
    """The checkout's commit (``<sha>-dirty`` when it has changes), else the package version."""
    root = package_dir().parent
    try:
        sha = _git(root, "rev-parse", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no", "--", "fusion_assets")
    except (OSError, subprocess.CalledProcessError):
        try:
            return f"fusion_assets=={metadata.version('fusion_assets')}"
        except metadata.PackageNotFoundError:
            return "unknown"
    return f"{sha}-dirty" if dirty else sha


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()
