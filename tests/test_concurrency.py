"""Many writers, one results folder: a reader never sees a partial record, and the last word is a whole one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support import ROOT

from peftbench import records


class Reader(threading.Thread):
    """Parses every ``run.json`` under ``root`` over and over until stopped; keeps what failed to parse."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root, self.stop, self.reads, self.errors = root, threading.Event(), 0, []

    def run(self) -> None:
        while not self.stop.is_set():
            for path in list(self.root.rglob("run.json")):
                try:
                    text = path.read_text()
                except FileNotFoundError:
                    continue
                try:
                    json.loads(text)
                    self.reads += 1
                except json.JSONDecodeError as error:
                    self.errors.append(f"{path}: {error}: {text[-200:]!r}")
            time.sleep(0.002)  # leave the writers some of the two shared cores

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=60)


# Holds each process at the start of training until all ``PARTIES`` have got there (or 20 s have passed, so
# that a runner which serialises attempts at one run id, e.g. with a lock, does not deadlock here): the
# training windows then overlap for certain.
DRIVER = """
import os, sys, time
from pathlib import Path
import peftbench.train as train

barrier, parties = Path(sys.argv[1]), int(sys.argv[2])
fit = train.fit

def synchronised(*args, **kwargs):
    (barrier / str(os.getpid())).touch()
    deadline = time.time() + 20
    while len(list(barrier.iterdir())) < parties and time.time() < deadline:
        time.sleep(0.05)
    return fit(*args, **kwargs)

train.fit = synchronised
from peftbench.cli import main
main(sys.argv[3:])
"""


def tiny_run(tmp_path: Path, seed: int, parties: int) -> subprocess.Popen:
    args = ["model=tiny_bert", "trainer=tiny", "task.max_train_samples=32", "task.max_eval_samples=32",
            "trainer.max_steps=4", "trainer.eval_every=2", "trainer.checkpoint_every=1", "experiment_name=shared",
            f"seed={seed}", f"paths.results_dir={tmp_path}", f"paths.report_dir={tmp_path / 'reports'}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    barrier = tmp_path / "barrier"
    barrier.mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(barrier), str(parties), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_concurrent_runs_in_one_folder_leave_whole_records(tmp_path) -> None:
    reader = Reader(tmp_path)
    reader.start()
    # Seeds 1 and 2 are distinct runs; the two seed-3 processes are two attempts at one run id at the same time.
    # Every read of run.json must parse, and each run id must end with one whole, completed record. The two
    # attempts must not both write into the run's folder: its metrics.jsonl must read like one run's log (each
    # step once, in order), as after a single attempt. Serialising them (the second waits, then finds the
    # completed record and skips) or running them one after the other both satisfy this; interleaving does not.
    seeds = (1, 2, 3, 3)
    processes = [tiny_run(tmp_path, seed, len(seeds)) for seed in seeds]
    outputs = [process.communicate(timeout=600) for process in processes]
    reader.finish()
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    assert reader.errors == [] and reader.reads > 0
    paths = sorted((tmp_path / "shared").rglob("run.json"))
    assert len(paths) == 3  # one record per run id, the duplicated attempt included
    by_seed = {}
    for path in paths:
        record = json.loads(path.read_text())
        by_seed[record["seed"]] = record
        assert record["status"] == "completed" and record["failure"] is None
        assert [entry["step"] for entry in record["history"]] == [2, 4]
        assert record["total_steps"] == 4 and record["metrics"]["final"]
        assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []  # no temporary files
        assert not (path.parent / "checkpoint.pt").exists()
    assert sorted(by_seed) == [1, 2, 3]
    for path in paths:
        rows = [json.loads(line) for line in (path.parent / "metrics.jsonl").read_text().splitlines()]
        steps = [row["step"] for row in rows if "train/loss" in row]
        assert steps == [1, 2, 3, 4], f"{path.parent.name}: train/loss logged at steps {steps}"
        assert [row["step"] for row in rows if "eval/accuracy" in row] == [2, 4], path.parent.name


WRITER = """
import sys
from pathlib import Path
from peftbench.records import write_json_atomic

path, writer, times = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for attempt in range(times):
    # ~200 KB: large enough that a non-atomic write would be seen half done
    write_json_atomic(path, {"writer": writer, "attempt": attempt, "rows": [[writer, attempt, i] for i in range(8000)]})
"""


@pytest.mark.slow
def test_write_json_atomic_under_concurrent_writers_of_one_path(tmp_path) -> None:
    path = tmp_path / "run.json"
    records.write_json_atomic(path, {"writer": -1, "attempt": -1, "rows": []})
    reader = Reader(tmp_path)
    reader.start()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), "25"], cwd=ROOT, env=env,
                                stderr=subprocess.PIPE, text=True) for w in range(4)]
    for writer in writers:
        _, stderr = writer.communicate(timeout=300)
        assert writer.returncode == 0, stderr[-3000:]
    time.sleep(0.05)
    reader.finish()
    assert reader.errors == [] and reader.reads > 0
    final = json.loads(path.read_text())
    assert final["writer"] in range(4) and final["attempt"] == 24  # one writer's last, whole payload
    assert final["rows"] == [[final["writer"], 24, i] for i in range(8000)]
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # every temporary file renamed, none left
