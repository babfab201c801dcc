"""Run records: ``results/<experiment>/<run-id>/run.json``, written atomically.

No torch import at module level: the analysis layer reads records without loading the training stack.

A record is always either the previous complete file or the new complete file: we write a temporary file in
the same directory, fsync it and ``os.replace`` it over the old one (atomic on POSIX). Schema: README.md,
section "Run records".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
RECORD_NAME = "run.json"
PACKAGES = ("torch", "transformers", "peft", "accelerate", "datasets", "hydra-core", "numpy", "scikit-learn")


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=1, sort_keys=False, default=_json_default)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0:  # tensors and arrays
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a run record")


@contextlib.contextmanager
def run_lock(run_dir: Path, held: bool = True) -> Iterator[None]:
    """Exclusive lock on a run folder for one attempt: a second attempt at the same run id (a duplicate job,
    a rerun while the first still runs) waits instead of sharing its log and checkpoint. flock is released
    when the holder dies, so a killed or requeued job never leaves the run locked. Only the main process of a
    multi-process run holds it (``held``)."""
    if not held:
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "run.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_record(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / RECORD_NAME
    if not path.exists():
        return None
    return json.loads(path.read_text())


def is_completed(run_dir: Path) -> bool:
    record = read_record(run_dir)
    return record is not None and record.get("status") == "completed"


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def git_state(repository: Path | None = None) -> dict[str, Any]:
    cwd = repository or Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
        return {"commit": commit, "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def peak_memory_mb() -> dict[str, float | None]:
    # ru_maxrss is in KiB on Linux and bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mb = rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024
    import torch  # here, not at the top: the analysis layer reads records without the training stack
    cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {"cpu_rss": round(rss_mb, 1), "cuda": None if cuda is None else round(cuda, 1)}


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
