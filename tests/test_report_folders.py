"""Reports go to a folder per run; ``latest`` is a link moved atomically, never overwritten."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fusion_assets.report_folders import latest_report, point_latest, versioned_report_dir


def _write_report(root: Path, run_id: str, minute: int, text: str) -> Path:
    folder = versioned_report_dir(root, run_id, datetime(2026, 1, 5, 3, minute, tzinfo=UTC))
    folder.mkdir(parents=True)
    (folder / "report.md").write_text(text)
    return folder


def test_each_run_gets_its_own_folder_and_latest_follows(tmp_path: Path) -> None:
    first = _write_report(tmp_path, "abcdef1234567890", 0, "first")
    assert first.name == "20260105T030000Z-abcdef12"
    point_latest(first)
    second = _write_report(tmp_path, "0123456789abcdef", 1, "second")
    latest = point_latest(second)
    assert latest == tmp_path / "latest" and latest.is_symlink()
    assert (latest / "report.md").read_text() == "second"
    assert (first / "report.md").read_text() == "first"  # the older report is untouched
    assert latest_report(tmp_path) == second.resolve()
    assert not any(p.name.startswith(".latest") for p in tmp_path.iterdir())
    # Relative: the data folder can move.
    assert not Path(latest.readlink()).is_absolute()


def test_an_unversioned_latest_folder_is_kept_aside(tmp_path: Path) -> None:
    old = tmp_path / "latest"
    old.mkdir()
    (old / "report.md").write_text("before versioning")
    point_latest(_write_report(tmp_path, "run", 0, "new"))
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("unversioned-")]
    assert len(kept) == 1 and (kept[0] / "report.md").read_text() == "before versioning"
    assert (tmp_path / "latest" / "report.md").read_text() == "new"
