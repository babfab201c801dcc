"""Loggers: wandb in offline mode (no network) and the local JSONL/CSV files."""

from __future__ import annotations

import csv

from support import compose, tiny_overrides

from peftbench.train import train


def test_wandb_offline_run_is_written_with_its_group(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    record = train(compose(tiny_overrides(tmp_path, "logger=wandb", "logger.group=sweep-7")))
    assert record["status"] == "completed"
    run_dir = next((tmp_path / "results").rglob("run.json")).parent
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, list(run_dir.rglob("*"))
    assert list(offline[0].glob("*.wandb")), "no wandb event file"
    assert record["config"]["logger"]["group"] == "sweep-7"


def test_local_logger_writes_every_step_and_evaluation(tmp_path) -> None:
    train(compose(tiny_overrides(tmp_path)))
    run_dir = next((tmp_path / "results").rglob("run.json")).parent
    with open(run_dir / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["step"] for row in rows if row["train/loss"]] == [str(step) for step in range(1, 7)]
    assert sum(1 for row in rows if row["eval/accuracy"]) == 2
