"""Damaged files: checkpoints and run records that are empty, truncated, byte-flipped or garbage are named on
stderr, kept aside as ``<name>.damaged-<time>``, and the run starts over instead of crashing or trusting them."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch
from support import compose, tiny_overrides

from peftbench import checkpoint, records, results
from peftbench.checkpoint import LoopState


class NoMethod:
    def state_dict(self) -> dict:
        return {}


def tiny_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 8)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    checkpoint.save(path, model, NoMethod(), [optimizer], [scheduler], LoopState(step=1, epoch=0, batches_in_epoch=1),
                    extra={"record": {"status": "running", "marker": 7}})
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def set_aside_files(directory: Path, name: str) -> list[Path]:
    return sorted(directory.glob(f"{name}.damaged-*"))


def test_good_checkpoint_round_trips_with_group_readable_mode(tmp_path, capsys) -> None:
    path = tmp_path / "checkpoint.pt"
    weights = tiny_checkpoint(path)
    payload = checkpoint.load(path)
    assert payload is not None and payload["extra"]["record"] == {"status": "running", "marker": 7}
    assert all(torch.equal(payload["model"][name], value) for name, value in weights.items())
    assert payload["loop"]["step"] == 1 and len(payload["optimizers"]) == 1
    assert path.read_bytes()[:8] == checkpoint.MAGIC
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert capsys.readouterr().err == "" and [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def flip_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:]


def flip_header(data: bytes) -> bytes:  # inside the stored length: must not pass as a shorter file
    return data[:8] + bytes([data[8] ^ 0x01]) + data[9:]


DAMAGE = {
    "empty": (lambda data: b"", "empty file"),
    "truncated": (truncate, "truncated"),
    "truncated-header": (lambda data: data[:20], "truncated inside its header"),
    "flipped-byte": (flip_middle, "sha256 mismatch"),
    "flipped-length": (flip_header, "payload"),
    "garbage": (lambda data: os.urandom(len(data)), "not a peftbench checkpoint"),
    "extra-bytes": (lambda data: data + b"\0", "bytes beyond"),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_checkpoint_is_named_set_aside_and_not_loaded(tmp_path, capsys, kind) -> None:
    path = tmp_path / "checkpoint.pt"
    tiny_checkpoint(path)
    original = path.read_bytes()
    damage, problem = DAMAGE[kind]
    damaged = damage(original)
    path.write_bytes(damaged)
    assert checkpoint.load(path) is None
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and str(path) in err[0] and problem in err[0], err
    assert not path.exists()
    (kept,) = set_aside_files(tmp_path, "checkpoint.pt")
    assert kept.read_bytes() == damaged and kept.name in err[0]
    assert checkpoint.load(path) is None and capsys.readouterr().err == ""  # nothing left to complain about


def test_intact_but_unpicklable_checkpoint_is_set_aside(tmp_path, capsys) -> None:
    """A correct checksum over bytes torch cannot read (e.g. a checkpoint from an incompatible version)."""
    path = tmp_path / "checkpoint.pt"
    tiny_checkpoint(path)
    body = b"not a torch zip at all"
    import hashlib

    path.write_bytes(checkpoint.HEADER.pack(checkpoint.MAGIC, len(body), hashlib.sha256(body).digest()) + body)
    assert checkpoint.load(path) is None
    (line,) = capsys.readouterr().err.splitlines()
    assert str(path) in line and "cannot be unpickled" in line
    assert len(set_aside_files(tmp_path, "checkpoint.pt")) == 1


def test_legacy_checkpoint_loads_unverified_and_a_damaged_one_is_set_aside(tmp_path, capsys) -> None:
    path = tmp_path / "checkpoint.pt"
    tiny_checkpoint(tmp_path / "new.pt")
    payload = checkpoint.load(tmp_path / "new.pt")
    torch.save(payload, path)  # what save() wrote before checksums
    assert checkpoint.load(path)["extra"]["record"]["marker"] == 7
    assert "no checksum" in capsys.readouterr().err
    path.write_bytes(truncate(path.read_bytes()))
    assert checkpoint.load(path) is None
    assert "cannot be unpickled" in capsys.readouterr().err and len(set_aside_files(tmp_path, "checkpoint.pt")) == 1


def test_second_damage_in_the_same_second_keeps_both_files(tmp_path, capsys) -> None:
    path = tmp_path / "checkpoint.pt"
    for _ in range(2):
        path.write_bytes(b"")
        assert checkpoint.load(path) is None
    assert len(set_aside_files(tmp_path, "checkpoint.pt")) == 2


def test_write_json_atomic_is_group_readable(tmp_path) -> None:
    path = tmp_path / "run.json"
    records.write_json_atomic(path, {"status": "running"})
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize(("content", "problem"), [(b"", "is empty"), (b'{"status": "compl', "line 1 column 12"),
                                                  (b"[1, 2]", "not a run record"), (b"\xff\xfe{}", "not UTF-8")])
def test_read_record_names_the_damaged_file_and_the_way_out(tmp_path, content, problem) -> None:
    (tmp_path / "run.json").write_bytes(content)
    with pytest.raises(records.RecordError, match="move it aside") as caught:
        records.read_record(tmp_path)
    assert str(tmp_path / "run.json") in str(caught.value) and problem in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_is_completed_sets_a_damaged_record_aside(tmp_path, capsys) -> None:
    damaged = b'{\n "status": "completed",\n "metrics": {'
    (tmp_path / "run.json").write_bytes(damaged)
    assert records.is_completed(tmp_path) is False
    (line,) = capsys.readouterr().err.splitlines()
    assert str(tmp_path / "run.json") in line and "line 3 column" in line
    (kept,) = set_aside_files(tmp_path, "run.json")
    assert kept.read_bytes() == damaged and not (tmp_path / "run.json").exists()
    assert records.read_record(tmp_path) is None


def test_results_load_skips_a_damaged_record_with_one_line(tmp_path, capsys) -> None:
    good = {"run_id": "a", "experiment": "e", "status": "completed", "seed": 1, "metrics": {"final": {"acc": 0.5}}}
    records.write_json_atomic(tmp_path / "e" / "a" / "run.json", good)
    (tmp_path / "e" / "b").mkdir(parents=True)
    (tmp_path / "e" / "b" / "run.json").write_text('{"run_id": "b", ')
    frame = results.load(tmp_path)
    assert list(frame["run_id"]) == ["a"] and list(frame["final/acc"]) == [0.5]
    (line,) = capsys.readouterr().err.splitlines()
    assert str(tmp_path / "e" / "b" / "run.json") in line and "not valid JSON" in line
    assert (tmp_path / "e" / "b" / "run.json").exists()  # the reader never moves files


def failing_at_step(monkeypatch, step: int) -> None:
    original = torch.optim.AdamW.step
    calls = {"n": 0}

    def stepping(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == step:
            raise RuntimeError(f"killed at step {step}")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", stepping)


def logged_steps(run_dir: Path) -> list[int]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row["step"] for row in rows if "train/loss" in row]


def comparable(record: dict) -> dict:
    return {key: record[key] for key in ("status", "metrics", "history", "method_records", "parameters",
                                         "total_steps")}


@pytest.mark.parametrize("damage", ["truncated", "flipped-byte"])
def test_run_with_a_damaged_checkpoint_restarts_from_scratch(tmp_path, monkeypatch, capsys, damage) -> None:
    from peftbench.train import train

    overrides = tiny_overrides(tmp_path, "trainer.checkpoint_every=1", "logger=csv")
    failing_at_step(monkeypatch, 5)  # steps 1-4 done and checkpointed, then the attempt dies
    with pytest.raises(RuntimeError, match="killed at step 5"):
        train(compose(overrides))
    monkeypatch.undo()
    (path,) = tmp_path.rglob(checkpoint.CHECKPOINT_NAME)
    run_dir = path.parent
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert checkpoint.read_payload(path)["loop"]["step"] == 4
    damaged = DAMAGE[damage][0](path.read_bytes())
    path.write_bytes(damaged)
    capsys.readouterr()

    record = train(compose(overrides))  # the rerun: no EOFError, no silent load
    err = capsys.readouterr().err
    assert f"{path} is damaged" in err and "the run starts from scratch" in err
    assert record["status"] == "completed" and "resumed_at_steps" not in record
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    (kept,) = set_aside_files(run_dir, checkpoint.CHECKPOINT_NAME)
    assert kept.read_bytes() == damaged and not path.exists()
    assert logged_steps(run_dir) == list(range(1, 7))  # all six steps redone, each logged once

    straight = train(compose(tiny_overrides(tmp_path / "straight", "logger=csv")))
    assert comparable(record) == comparable(straight)  # from scratch means the same result as never failing


def test_rerun_over_a_damaged_run_record_redoes_the_run_and_keeps_the_file(tmp_path, capsys) -> None:
    from peftbench.train import train

    first = train(compose(tiny_overrides(tmp_path)))
    (path,) = tmp_path.rglob("run.json")
    damaged = path.read_bytes()[:200]  # cut short: a completed run whose record no longer says so
    path.write_bytes(damaged)
    capsys.readouterr()

    again = train(compose(tiny_overrides(tmp_path)))  # no JSONDecodeError
    err = capsys.readouterr().err
    assert f"{path} is damaged" in err and "not valid JSON" in err
    assert again["status"] == "completed" and comparable(again) == comparable(first)
    assert json.loads(path.read_text())["status"] == "completed"
    (kept,) = set_aside_files(path.parent, "run.json")
    assert kept.read_bytes() == damaged
    assert list(results.load(tmp_path / "results")["status"]) == ["completed"]  # the kept file is not a record
