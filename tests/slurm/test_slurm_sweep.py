"""Real SLURM multiruns through conf/hydra/launcher/slurm.yaml (hydra-submitit-launcher's SlurmLauncher).

Needs root: the session fixture starts a one-node cluster with scripts/slurm/start.sh. Both sweeps take
about 10-20 s once the cluster is up.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from peftbench import records

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
