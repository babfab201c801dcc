"""Resumable training state: a run killed at any step resumes bit-identically on CPU.

A checkpoint holds what the next step depends on: trainable parameters, optimizer and scheduler states, the
method's state (AdaLoRA's importance EMAs and masks, SoRA's threshold stage), RNG states, the position in
the data order (epoch and batches consumed) and the evaluation history. It is written atomically beside
run.json and removed when the run completes.
"""

from __future__ import annotations

import os
import random
import signal
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

CHECKPOINT_NAME = "checkpoint.pt"


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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


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
