"""Metric loggers: a local JSONL/CSV file beside run.json (always, unless ``none``) and optionally wandb."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


class LocalLogger:
    """Appends one JSON line per log call to ``metrics.jsonl`` and rewrites ``metrics.csv`` at the end."""

    def __init__(self, run_dir: Path, resume_step: int | None = None) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.rows: list[dict[str, Any]] = []
        if resume_step is not None and self.path.exists():  # keep what the checkpointed steps logged, drop the rest
            rows = [json.loads(line) for line in self.path.read_text().splitlines() if line]
            self.rows = [row for row in rows if row["step"] <= resume_step]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("".join(json.dumps(row) + "\n" for row in self.rows))

    def log(self, values: dict[str, Any], step: int) -> None:
        row = {"step": step, **values}
        self.rows.append(row)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(row) + "\n")

    def finish(self) -> None:
        columns = sorted({key for row in self.rows for key in row}, key=lambda k: (k != "step", k))
        with open(self.path.with_suffix(".csv"), "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)


class WandbLogger:
    """wandb run; ``WANDB_MODE=offline`` or ``disabled`` is honoured by wandb itself."""

    def __init__(self, run_dir: Path, name: str, config: dict[str, Any], project: str | None,
                 group: str | None, entity: str | None) -> None:
        import wandb  # imported here: only wandb runs need it

        self.run = wandb.init(project=project, group=group, entity=entity, name=name, config=config,
                              dir=str(run_dir), reinit="finish_previous")

    def log(self, values: dict[str, Any], step: int) -> None:
        self.run.log(values, step=step)

    def finish(self) -> None:
        self.run.finish()


class Loggers:
    def __init__(self, loggers: list) -> None:
        self.loggers = loggers

    def log(self, values: dict[str, Any], step: int) -> None:
        for logger in self.loggers:
            logger.log(values, step)

    def finish(self) -> None:
        for logger in self.loggers:
            logger.finish()


def build_loggers(logger_cfg: Any, run_dir: Path, name: str, config: dict[str, Any],
                  resume_step: int | None = None) -> Loggers:
    if logger_cfg.name == "none":
        return Loggers([])
    loggers: list = [LocalLogger(run_dir, resume_step)]
    if logger_cfg.name == "wandb":
        loggers.append(WandbLogger(run_dir, name, config, logger_cfg.project, logger_cfg.group, logger_cfg.entity))
    return Loggers(loggers)
