"""Skip-completed, force, failed runs, atomic writes, and the results table."""

from __future__ import annotations

import json

import pytest
from support import compose, tiny_overrides

from peftbench import records, results
from peftbench.train import train


def test_completed_run_is_skipped_unless_forced(tmp_path, capsys) -> None:
    train(compose(tiny_overrides(tmp_path)))
    path = next(tmp_path.rglob("run.json"))
    records.write_json_atomic(path, {**json.loads(path.read_text()), "marker": "first attempt"})
    again = train(compose(tiny_overrides(tmp_path)))
    assert "skipping" in capsys.readouterr().out
    assert again["marker"] == "first attempt"
    forced = train(compose(tiny_overrides(tmp_path, "force=true")))
    assert forced["status"] == "completed" and "marker" not in json.loads(path.read_text())


def test_run_that_raises_midway_is_recorded_failed(tmp_path, monkeypatch) -> None:
    from peftbench.methods.lora.method import LoRAMethod

    def explode(self, model, step):
        if step == 4:
            raise RuntimeError("boom at step 4")

    monkeypatch.setattr(LoRAMethod, "after_optimizer_step", explode)
    with pytest.raises(RuntimeError, match="boom"):
        train(compose(tiny_overrides(tmp_path)))
    record = json.loads(next(tmp_path.rglob("run.json")).read_text())
    assert record["status"] == "failed"
    assert record["failure"] == {**record["failure"], "type": "RuntimeError", "message": "boom at step 4"}
    monkeypatch.undo()
    redone = train(compose(tiny_overrides(tmp_path)))  # a failed run is redone, not skipped
    assert redone["status"] == "completed"


def test_atomic_write_keeps_the_old_record_when_serialisation_fails(tmp_path) -> None:
    path = tmp_path / "run.json"
    records.write_json_atomic(path, {"status": "completed"})
    with pytest.raises(TypeError):
        records.write_json_atomic(path, {"status": "running", "bad": object()})
    assert json.loads(path.read_text()) == {"status": "completed"}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary file left behind


def test_results_load_gives_one_tidy_row_per_run(tmp_path) -> None:
    for seed in (1, 2):
        train(compose(tiny_overrides(tmp_path, f"seed={seed}")))
    frame = results.load(tmp_path / "results")
    assert len(frame) == 2 and sorted(frame["seed"]) == [1, 2]
    assert {"method", "model", "task", "budget", "final/accuracy", "best/accuracy", "params/trainable"} <= set(frame)
    assert (frame["status"] == "completed").all()
