"""Run records: ``results/<experiment>/<run-id>/run.json``, written atomically.

No torch import at module level: the analysis layer reads records without loading the training stack.

A record is always either the previous complete file or the new complete file: we write a temporary file in
the same directory, fsync it, ``os.replace`` it over the old one (atomic on POSIX) and fsync the directory, so
the rename itself survives a power cut. Records are created readable by group and others (0666 less the umask,
like every other file a run writes). Schema: README.md, section "Run records".

A record that is not valid JSON (edited by hand, a disk or copy fault) is never trusted: ``read_record`` raises
:class:`RecordError` naming the file, and ``is_completed`` — what a rerun asks first — sets the file aside as
``run.json.damaged-<UTC time>`` with one line on stderr and answers False, so the rerun redoes the run (or
resumes it from an intact checkpoint) instead of crashing, and the damaged file is kept for inspection.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
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
PACKAGES = ("torch", "transformers", "peft", "accelerate", "datasets", "hydra-core", "numpy", "scipy",
            "rouge-score")  # scipy: STS-B correlations; rouge-score: summarization


class RecordError(ValueError):
    """A run record that cannot be trusted: empty, not valid JSON, or not a JSON object."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path} is {problem}; move it aside, or rerun the same command, which sets it aside "
                         "and redoes the run")
        self.path, self.problem = Path(path), problem


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    with atomic_file(path, "w") as handle:
        json.dump(payload, handle, indent=1, sort_keys=False, default=_json_default)


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "wb") -> Iterator[Any]:
    """A handle on a temporary file beside ``path`` that replaces ``path`` only when the block ends without an
    error: written, fsynced, renamed over ``path`` (atomic on POSIX), directory fsynced. On any error the
    temporary file is removed and ``path`` is untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            os.fchmod(handle.fileno(), file_mode())  # mkstemp creates 0600
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def file_mode() -> int:
    """0666 less the process umask: the mode ``open(path, "w")`` would give a new file."""
    try:  # Linux >= 4.7 shows the umask without changing it (os.umask would, racing other threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable. File systems that cannot fsync a directory are
    skipped (EINVAL/ENOTSUP), anything else is an error."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def set_aside(path: Path, problem: str, outcome: str = "the run is redone") -> Path | None:
    """Rename a damaged file to ``<name>.damaged-<UTC time>`` beside it (kept for inspection, never deleted) and
    print one line to stderr naming it, what is wrong and ``outcome``. Returns the new path, or None when the file was
    already gone (another process of the same run set it aside first)."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    counter = 0
    while target.exists():
        counter += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{counter}")
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None
    fsync_directory(path.parent)
    print(f"peftbench: {path} is damaged ({problem}); kept as {target.name}, {outcome}",
          file=sys.stderr, flush=True)
    return target


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


def parse_record(path: Path) -> dict[str, Any]:
    """The record in ``path``; :class:`RecordError` naming the file if it is not a JSON object."""
    try:
        record = json.loads(Path(path).read_bytes().decode("utf-8"))
    except json.JSONDecodeError as error:
        empty = not error.doc.strip()
        raise RecordError(path, "empty" if empty else f"not valid JSON (line {error.lineno} column {error.colno}: "
                                                      f"{error.msg})") from error
    except UnicodeDecodeError as error:
        raise RecordError(path, f"not valid JSON (not UTF-8 text at byte {error.start})") from error
    if not isinstance(record, dict):
        raise RecordError(path, f"not a run record (a JSON {type(record).__name__}, not an object)")
    return record


def read_record(run_dir: Path) -> dict[str, Any] | None:
    """The run's record, None if it has none; :class:`RecordError` if run.json is damaged."""
    path = Path(run_dir) / RECORD_NAME
    if not path.exists():
        return None
    return parse_record(path)


def is_completed(run_dir: Path) -> bool:
    """Whether the run has a completed record. A damaged run.json is not trusted as completed, even if it was:
    it is set aside (kept as ``run.json.damaged-<time>``, one line on stderr) and the answer is False, so the
    caller redoes the run, resuming from its checkpoint if an intact one is there."""
    try:
        record = read_record(run_dir)
    except RecordError as error:
        set_aside(error.path, error.problem)
        return False
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
