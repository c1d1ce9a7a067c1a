"""The landing zone: which folders are complete batches, and how a batch is written.

Append-only protocol (docs/operations.md, "Threat model"):

1. A writer (importer, synthetic generator) fills a hidden staging folder
   ``<landing>/.import-<batch>-<pid>/`` and writes ``_READY`` last, holding the
   batch's manifest (every file's name, size and SHA-256).
2. :func:`publish_batch` renames the staging folder to ``<landing>/<batch>/`` in
   one ``rename``: a batch appears complete or not at all.  An existing batch is
   never deleted or overwritten: the same content is a no-op, other content is
   refused unless ``replace``, which first moves the old copy to
   ``<landing>/_replaced/<batch>.<time>/``; ingest drops that copy once the new
   one is in the warehouse, quarantine puts it back.
3. A folder counts as ready when its manifest's files are all there at their
   sizes (a ``_READY`` copied before the files it lists is not ready, and is
   looked at again next time); ingest also checks the checksums.  An empty
   ``_READY`` (a writer without a manifest) is taken as complete, unchecked.
4. Staging folders of writers that died are removed by the next writer.

Standard library only: the landing sensor imports this on every code-location load.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fusion_assets.identifiers import check_batch_id

READY_MARKER = "_READY"  # written last by every writer: the batch is complete; holds the manifest
QUARANTINE_DIR = "_quarantine"  # rejected batches, with their errors.json
REPLACED_DIR = "_replaced"  # old copies of batches replaced with --replace, until ingested
STAGING_PREFIX = ".import-"
MANIFEST_FORMAT = "fusion_assets.landing/1"
STALE_STAGING_S = 6 * 3600  # a staging folder this old is abandoned whoever wrote it
_OWNER = ".owner"
_CHUNK = 1 << 20
_STAMP = re.compile(r"^\d{8}T\d{12}$")  # the suffix of a kept copy (_stamp)


class BatchNotReady(ValueError):
    """The batch's manifest lists files that are missing or still growing: try again later."""


class LandingConflict(ValueError):
    """A batch of that id exists with other content; the message says how to proceed."""


@dataclass(frozen=True)
class Published:
    """What :func:`publish_batch` did."""

    batch_dir: Path
    unchanged: bool = False  # the same content was already there
    replaced: Path | None = None  # where the previous copy was kept


# ------------------------------------------------------------------ manifests
def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def build_manifest(folder: Path, batch_id: str) -> dict[str, Any]:
    """Every file of ``folder`` (not ``_READY``, not hidden) with its size and SHA-256."""
    files = {
        p.name: {"bytes": p.stat().st_size, "sha256": file_digest(p)}
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != READY_MARKER and not p.name.startswith(".")
    }
    written = datetime.now(UTC).isoformat(timespec="seconds")
    return {"format": MANIFEST_FORMAT, "batch_id": batch_id, "written_at": written, "files": files}


def write_ready(folder: Path, batch_id: str) -> dict[str, Any]:
    """Write ``_READY`` with the folder's manifest (atomically: temp file, then rename)."""
    manifest = build_manifest(folder, batch_id)
    tmp = folder / f".{READY_MARKER}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, folder / READY_MARKER)
    return manifest


def read_manifest(batch_dir: Path) -> dict[str, Any] | None:
    """The manifest of ``_READY``; None for an empty marker; ValueError while half-written."""
    text = (batch_dir / READY_MARKER).read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        return None
    manifest = json.loads(text)  # a marker still being copied fails here: not ready
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ValueError(f"{batch_dir / READY_MARKER} is not a batch manifest")
    return manifest


def manifest_gaps(batch_dir: Path, manifest: dict[str, Any], checksums: bool) -> list[str]:
    """What differs from the manifest: missing or resized files (and, if asked, changed content)."""
    gaps = []
    for name, entry in sorted(manifest["files"].items()):
        path = batch_dir / name
        if not path.is_file():
            gaps.append(f"{name}: missing")
        elif path.stat().st_size != entry.get("bytes"):
            gaps.append(
                f"{name}: {path.stat().st_size} bytes, the manifest says {entry.get('bytes')}"
            )
        elif checksums and file_digest(path) != entry.get("sha256"):
            gaps.append(f"{name}: content differs from the manifest (SHA-256)")
    return gaps


def unlisted_files(batch_dir: Path, manifest: dict[str, Any]) -> list[str]:
    """Parquet files of the batch its manifest does not list (added after it was written)."""
    return sorted(p.name for p in batch_dir.glob("*.parquet") if p.name not in manifest["files"])


def is_complete(batch_dir: Path) -> bool:
    """``_READY`` present and every file it lists there at its size (one stat each)."""
    if not (batch_dir / READY_MARKER).is_file():
        return False
    try:
        manifest = read_manifest(batch_dir)
    except (OSError, ValueError):
        return False  # the marker itself is still being written
    return manifest is None or not manifest_gaps(batch_dir, manifest, checksums=False)


# ------------------------------------------------------------------ scanning
def scan_ready_batches(root: Path, known: Collection[str] = ()) -> tuple[list[str], int]:
    """Complete batch folders under ``root`` not in ``known`` (sorted), and how many are incomplete.

    One ``scandir`` of the root plus, per folder not yet known, a read of its
    ``_READY`` and a stat per listed file: known folders are never touched.
    Folders starting with ``_`` (``_quarantine``) or ``.`` (staging) are not
    batches; a folder whose name is not a valid batch id is never ingested and
    counts as incomplete.
    """
    if not root.is_dir():
        return [], 0
    ready: list[str] = []
    incomplete = 0
    with os.scandir(root) as entries:
        for entry in entries:
            name = entry.name
            if name in known or name.startswith(("_", ".")):
                continue
            if not entry.is_dir(follow_symlinks=False):
                continue
            try:
                valid = check_batch_id(name) == name
            except ValueError:
                valid = False
            if valid and is_complete(Path(entry.path)):
                ready.append(name)
            else:
                incomplete += 1  # still being copied: looked at again next time
    return sorted(ready), incomplete


def list_ready_batches(root: Path) -> list[str]:
    """Every complete batch id under ``root``, sorted."""
    return scan_ready_batches(root)[0]


# ------------------------------------------------------------------ staging
def process_exists(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(folder: Path, now: float) -> bool:
    try:
        age = now - folder.stat().st_mtime
    except OSError:
        return False  # removed meanwhile
    try:
        owner = json.loads((folder / _OWNER).read_text())
    except (OSError, ValueError):
        return age > 60  # no owner file a minute after it was made: abandoned (or published)
    if age > STALE_STAGING_S:
        return True
    return owner.get("host") == socket.gethostname() and not process_exists(
        int(owner.get("pid", -1))
    )


def clean_stale_staging(root: Path) -> list[str]:
    """Remove staging folders whose writer died (same host) or that are over six hours old."""
    if not root.is_dir():
        return []
    now, removed = time.time(), []
    for folder in root.glob(f"{STAGING_PREFIX}*"):
        if folder.is_dir() and _is_stale(folder, now):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed


def staging_dir(root: Path, batch_id: str) -> Path:
    """A fresh hidden folder to write batch ``batch_id`` into (stale ones are removed first)."""
    check_batch_id(batch_id)
    root.mkdir(parents=True, exist_ok=True)
    clean_stale_staging(root)
    folder = root / f"{STAGING_PREFIX}{batch_id}-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    (folder / _OWNER).write_text(json.dumps(owner))
    return folder


# ------------------------------------------------------------------ publishing
def _data_digests(folder: Path) -> dict[str, str]:
    return {p.name: file_digest(p) for p in sorted(folder.glob("*.parquet"))}


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")


def publish_batch(staging: Path, root: Path, batch_id: str, replace: bool = False) -> Published:
    """Move a complete staging folder into place as ``<root>/<batch_id>/`` (see module doc)."""
    check_batch_id(batch_id)
    (staging / _OWNER).unlink(missing_ok=True)
    write_ready(staging, batch_id)
    target = root / batch_id
    if not target.exists():
        try:
            os.rename(staging, target)
            return Published(target)
        except OSError:
            if not target.exists():
                raise
    if _data_digests(target) == _data_digests(staging):
        shutil.rmtree(staging, ignore_errors=True)
        return Published(target, unchanged=True)
    if not replace:
        shutil.rmtree(staging, ignore_errors=True)
        raise LandingConflict(
            f"landing batch {batch_id!r} already exists at {target} with other content; "
            "nothing was changed -> import under a new batch id (e.g. --batch-id "
            f"{batch_id}-2), or pass --replace to replace it (the old copy is kept in "
            f"{root / REPLACED_DIR} until the new one is ingested)"
        )
    kept = root / REPLACED_DIR / f"{batch_id}.{_stamp()}"
    kept.parent.mkdir(exist_ok=True)
    os.rename(target, kept)
    os.rename(staging, target)
    return Published(target, replaced=kept)


def replaced_copies(root: Path, batch_id: str) -> list[Path]:
    """Old copies of ``batch_id`` kept by ``replace``, oldest first."""
    folder = root / REPLACED_DIR
    if not folder.is_dir():
        return []
    prefix = f"{batch_id}."
    return sorted(
        p
        for p in folder.iterdir()
        if p.name.startswith(prefix) and _STAMP.match(p.name[len(prefix) :])
    )


def drop_replaced(root: Path, batch_id: str) -> None:
    """The new copy of ``batch_id`` is ingested: its replaced copies are no longer needed."""
    for copy in replaced_copies(root, batch_id):
        shutil.rmtree(copy, ignore_errors=True)


def restore_replaced(root: Path, batch_id: str) -> Path | None:
    """The new copy of ``batch_id`` was refused: put the newest replaced copy back in place."""
    copies = replaced_copies(root, batch_id)
    target = root / batch_id
    if not copies or target.exists():
        return None
    os.rename(copies[-1], target)
    return target
