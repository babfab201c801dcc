"""Real SLURM multiruns through conf/hydra/launcher/slurm.yaml (hydra-submitit-launcher's SlurmLauncher).

Needs root: the session fixture starts a one-node cluster with scripts/slurm/start.sh. Each test takes
10-30 s once the cluster is up (more while other sessions' jobs share the node). The waits below only bound a
failure: they are generous because the jobs share two cores with the other xdist worker and its subprocesses.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from peftbench import records

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slurm

APP = Path(__file__).parent / "app" / "app.py"


def test_throwaway_app_runs_as_slurm_array(run_sweep, job_name, tmp_path: Path) -> None:
    run_sweep([str(APP), "-m", "hydra/launcher=slurm", "value=1,2,3", f"out_dir={tmp_path / 'out'}",
               f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra.launcher.mem_gb=1"], job_name)

    jobs = [json.loads((tmp_path / "out" / f"job{n}.json").read_text()) for n in range(3)]
    assert [job["value"] for job in jobs] == [1, 2, 3]
    assert all(job["slurm_job_id"] for job in jobs), "jobs did not run under SLURM"
    assert sorted(job["slurm_array_task_id"] for job in jobs) == ["0", "1", "2"]
    # submitit keeps the sbatch script and per-task logs under the sweep dir (slurm.yaml: submitit_folder).
    assert list((tmp_path / "sweep" / "submitit").glob("*/*_submission.sh"))
    assert list((tmp_path / "sweep" / "submitit").glob("*/*_0_log.out"))


def test_peftbench_multirun_on_slurm_writes_completed_records(run_sweep, job_name, tmp_path: Path) -> None:
    results = tmp_path / "results"
    run_sweep(["-m", "peftbench", "-m", "hydra/launcher=slurm", "model=tiny_bert", "task=rotten_tomatoes",
               "trainer=tiny", "seed=1,2", "experiment_name=slurm_test", f"paths.results_dir={results}",
               "task.max_train_samples=48", "task.max_eval_samples=32", f"hydra.sweep.dir={tmp_path / 'sweep'}",
               "hydra.launcher.mem_gb=2"], job_name)

    run_dirs = sorted(path.parent for path in (results / "slurm_test").glob(f"*/{records.RECORD_NAME}"))
    assert len(run_dirs) == 2, f"expected 2 run records, found {run_dirs}"
    for run_dir in run_dirs:
        record = records.read_record(run_dir)
        assert record["status"] == "completed", (run_dir, record.get("failure"))
    logs = list((tmp_path / "sweep" / "submitit").glob("*/*_log.out"))
    assert len(logs) == 2, f"expected one submitit log per job, found {logs}"


@contextlib.contextmanager
def launched(job_name: str, tmp_path: Path, *overrides: str):
    """The throwaway app's multirun in the background; on exit its launcher is killed and its jobs cancelled."""
    command = [sys.executable, str(APP), "-m", "hydra/launcher=slurm", f"out_dir={tmp_path / 'out'}",
               f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra.launcher.mem_gb=1", f"hydra.launcher.name={job_name}",
               *overrides]
    launcher = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PEFTBENCH_ROOT": str(ROOT)},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield launcher
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        subprocess.run(["scancel", f"--name={job_name}"], check=False)


def wait_until(condition, what: str, timeout_s: float = 180):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.5)
    pytest.fail(f"waited {timeout_s} s for {what}")


def pending_ids(job_name: str) -> list[str]:
    rows = subprocess.run(["squeue", "-h", "-r", f"--name={job_name}", "-o", "%i %T"],
                          capture_output=True, text=True).stdout.split("\n")
    rows = [row.split() for row in rows if row.strip()]
    return [job_id for job_id, state in rows] if rows and all(s == "PENDING" for _, s in rows) else []


def test_cancelled_job_fails_the_multirun_instead_of_hanging(slurm_cluster, job_name, tmp_path: Path) -> None:
    """Without slurmdbd only scripts/slurm/sacct tells submitit that a job died without a result."""
    with launched(job_name, tmp_path, "value=1", "sleep_s=120") as launcher:
        wait_until(lambda: (tmp_path / "out" / "started0").exists(), "the job to start")
        subprocess.run(["scancel", f"--name={job_name}"], check=True)
        output, _ = launcher.communicate(timeout=180)
    assert launcher.returncode != 0
    assert "CANCELLED" in output, output[-3000:]


def test_preempted_peftbench_run_checkpoints_requeues_and_resumes(slurm_cluster, job_name, tmp_path: Path) -> None:
    """submitit's preemption signal (USR2, as SLURM sends signal_delay_s before the limit): the run stops at a
    step boundary, checkpoints, records itself preempted, hands the signal to submitit, which requeues the job;
    the requeued job resumes from the checkpoint and completes."""
    results = tmp_path / "results"
    command = [sys.executable, "-m", "peftbench", "-m", "hydra/launcher=slurm", "model=tiny_bert", "trainer=tiny",
               "task=rotten_tomatoes", "task.max_train_samples=64", "task.max_eval_samples=16",
               "trainer.max_steps=1500", "trainer.eval_every=1500", "trainer.log_every=10", "seed=1",
               "experiment_name=preempt", f"paths.results_dir={results}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
               "hydra.launcher.mem_gb=2", f"hydra.launcher.name={job_name}"]
    launcher = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PEFTBENCH_ROOT": str(ROOT)},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        log = lambda: next(results.rglob("metrics.jsonl"), None)  # noqa: E731
        wait_until(lambda: log() is not None and log().read_text().count("\n") >= 3, "training to start", 300)
        subprocess.run(["scancel", "--signal=USR2", f"--name={job_name}"], check=True)
        # SLURM holds a requeued job for ~2 minutes (Reason=BeginTime); release it sooner, but not within the
        # second of the requeue: slurmd rejects a launch credential issued in the second its old one was revoked
        # ("Killing non-startable batch JobId=84: Job credential revoked", seen once on a loaded CI machine).
        pending = wait_until(lambda: pending_ids(job_name), "the job to be requeued", 300)
        time.sleep(3)
        for job_id in pending:
            subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True)
        output, _ = launcher.communicate(timeout=600)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        subprocess.run(["scancel", f"--name={job_name}"], check=False)
    assert launcher.returncode == 0, output[-3000:]
    (run_dir,) = [path.parent for path in (results / "preempt").glob(f"*/{records.RECORD_NAME}")]
    record = records.read_record(run_dir)
    assert record["status"] == "completed", record.get("failure")
    assert len(record["resumed_at_steps"]) == 1 and 0 < record["resumed_at_steps"][0] < 1500
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [row["step"] for row in rows if "train/loss" in row]
    assert steps == list(range(10, 1501, 10))  # every logged step once, across the two attempts
    assert not (run_dir / "checkpoint.pt").exists()
