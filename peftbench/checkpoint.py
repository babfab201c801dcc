"""Resumable training state: a run killed at any step resumes bit-identically on CPU.

A checkpoint holds what the next step depends on: trainable parameters, optimizer and scheduler states, the
method's state (AdaLoRA's importance EMAs and masks, SoRA's threshold stage), RNG states, the position in
the data order (epoch and batches consumed) and the evaluation history. It is written atomically beside
run.json and removed when the run completes.

File format: a 48-byte header — ``PEFTCKP1``, the payload's length (8 bytes, little-endian) and its sha256
(32 bytes) — then the ``torch.save`` payload. The header is filled in last, the file fsynced, renamed over the
old checkpoint and the directory fsynced. ``load`` checks the length and the checksum before unpickling
anything, so an empty, truncated or byte-flipped file is always detected: it is set aside as
``checkpoint.pt.damaged-<UTC time>`` (kept), one line on stderr says why, and the run starts from scratch.
A checkpoint written before checksums existed (a bare torch zip) still loads, unverified, with a note.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import signal
import struct
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from peftbench import records

CHECKPOINT_NAME = "checkpoint.pt"
MAGIC = b"PEFTCKP1"
HEADER = struct.Struct("<8sQ32s")  # magic, payload length, sha256 of the payload
LEGACY_MAGIC = b"PK\x03\x04"  # a bare torch.save zip, written before checksums
PAYLOAD_KEYS = ("model", "method", "optimizers", "schedulers", "loop", "extra")
CHUNK = 1 << 20


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted; ``problem`` says why in a few words."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = Path(path), problem


@dataclass
class LoopState:
    """Where the loop is: the optimizer steps done, the epoch and how many of its batches were consumed."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    running_loss: list[float] = field(default_factory=list)
    examples_seen: int = 0  # training examples and non-padding tokens consumed, all processes together
    tokens_seen: int = 0
    batch_tokens_seen: int = 0  # tokens of the padded training batches (padding included)
    rng: dict[str, Any] | None = None  # set on resume; restored once the epoch's data iterator exists


class Preempted(Exception):
    """A stop signal arrived: the loop saved a checkpoint at a step boundary and stopped."""

    def __init__(self, message: str, flag: StopFlag | None = None) -> None:
        super().__init__(message)
        self.flag = flag


STOP_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM)


class StopFlag:
    """Set by SIGUSR1/SIGTERM (what SLURM sends before preemption or the time limit) and SIGUSR2 (what submitit
    asks SLURM to send); read between steps. The handlers found at install time are kept: once the run has
    checkpointed and recorded itself as preempted, ``hand_over`` calls the one for the signal received, so
    submitit can still requeue the job."""

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    @property
    def signal_name(self) -> str | None:
        return None if self.signum is None else signal.Signals(self.signum).name

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            self.previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested, self.signum = True, signum

    def uninstall(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def hand_over(self) -> None:
        """Give the signal to whoever handled it before us (submitit: requeue and exit)."""
        self.uninstall()
        handler = self.previous.get(self.signum)
        if callable(handler):
            handler(self.signum, None)


def rng_states() -> dict[str, Any]:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().cpu().clone() for name, p in model.named_parameters() if p.requires_grad}


def save(path: Path, model: nn.Module, method: Any, optimizers: list, schedulers: list, state: LoopState,
         extra: dict[str, Any] | None = None) -> None:
    payload = {
        "model": trainable_state(model),
        "method": method.state_dict(),
        "optimizers": [o.state_dict() for o in optimizers],
        "schedulers": [s.state_dict() for s in schedulers],
        "loop": {**asdict(state), "rng": rng_states()},
        "extra": extra or {},
    }
    write_payload(path, payload)


class _HashingWriter:
    """What torch.save writes to: passes bytes on to the file, hashing and counting them (no copy in memory)."""

    def __init__(self, handle: Any) -> None:
        self.handle, self.sha256, self.size = handle, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


def write_payload(path: Path, payload: dict[str, Any]) -> None:
    """Header + torch.save payload into a temporary file, fsync, rename over ``path``, fsync the directory."""
    with records.atomic_file(path, "wb") as handle:
        handle.write(bytes(HEADER.size))  # zeros until the payload is complete: never a valid header
        writer = _HashingWriter(handle)
        torch.save(payload, writer)
        handle.seek(0)
        handle.write(HEADER.pack(MAGIC, writer.size, writer.sha256.digest()))


class _Window(io.RawIOBase):
    """The file from ``offset`` on, as a file of its own: what torch.load reads the payload through."""

    def __init__(self, handle: Any, offset: int) -> None:
        super().__init__()
        self.handle, self.offset = handle, offset
        handle.seek(offset)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self.handle.readinto(buffer)

    def seek(self, position: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position += self.offset
        return self.handle.seek(position, whence) - self.offset

    def tell(self) -> int:
        return self.handle.tell() - self.offset


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__


def read_payload(path: Path) -> dict[str, Any]:
    """The checkpoint's payload; :class:`CheckpointError` if it is empty, truncated, altered or unreadable."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEADER.size)
            if not head:
                raise CheckpointError(path, "empty file")
            if head.startswith(LEGACY_MAGIC):
                payload = _unpickle(path, handle, 0)
                print(f"peftbench: {path} has no checksum (written by an older peftbench); loaded unverified",
                      file=sys.stderr, flush=True)
                return payload
            if len(head) < HEADER.size:
                raise CheckpointError(path, f"truncated inside its header ({len(head)} of {HEADER.size} bytes)")
            magic, size, digest = HEADER.unpack(head)
            if magic != MAGIC:
                raise CheckpointError(path, f"not a peftbench checkpoint (header starts {magic!r})")
            found = os.fstat(handle.fileno()).st_size - HEADER.size
            if found < size:
                raise CheckpointError(path, f"truncated: {found} of {size} payload bytes")
            if found > size:
                raise CheckpointError(path, f"{found - size} bytes beyond the {size}-byte payload")
            sha256 = hashlib.sha256()
            while chunk := handle.read(CHUNK):
                sha256.update(chunk)
            if sha256.digest() != digest:
                raise CheckpointError(path, "sha256 mismatch: the content changed after it was written")
            return _unpickle(path, handle, HEADER.size)
    except OSError as error:
        raise CheckpointError(path, f"unreadable ({_one_line(error)})") from error


def _unpickle(path: Path, handle: Any, offset: int) -> dict[str, Any]:
    try:
        payload = torch.load(io.BufferedReader(_Window(handle, offset), CHUNK), map_location="cpu",
                             weights_only=False)
    except Exception as error:  # noqa: BLE001 - unpickling raises anything: EOFError, UnpicklingError, KeyError...
        raise CheckpointError(path, f"cannot be unpickled ({_one_line(error)})") from error
    missing = [key for key in PAYLOAD_KEYS if not isinstance(payload, dict) or key not in payload]
    if missing:
        raise CheckpointError(path, f"not a training checkpoint (no {', '.join(missing)})")
    return payload


def load(path: Path) -> dict[str, Any] | None:
    """The payload ``save`` wrote, or None if there is no checkpoint. A damaged one (empty, truncated, altered,
    unreadable) is set aside as ``<name>.damaged-<UTC time>`` with one line on stderr, and None is returned: the
    run starts from scratch rather than from state that cannot be trusted."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return read_payload(path)
    except CheckpointError as error:
        records.set_aside(path, error.problem, "the run starts from scratch")
        return None


def restore(payload: dict[str, Any], model: nn.Module, method: Any, optimizers: list, schedulers: list) -> LoopState:
    """Put parameters, optimizers, schedulers and method state back; RNG waits in the returned state."""
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in payload["model"].items():
            parameters[name].copy_(value)
    method.load_state_dict(payload["method"])
    for optimizer, state in zip(optimizers, payload["optimizers"], strict=True):
        optimizer.load_state_dict(state)
    for scheduler, state in zip(schedulers, payload["schedulers"], strict=True):
        scheduler.load_state_dict(state)
    return LoopState(**payload["loop"])
