"""Throwaway Hydra app for the SLURM tests: each job sleeps (first attempt only) and writes <out_dir>/job<N>.json.

It checks the launcher config (conf/hydra/launcher/slurm.yaml) and the cluster without loading any model.
"""

import json
import os
import socket
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=".", config_name="config")
def main(cfg: DictConfig) -> int:
    restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0"))  # > 0 after a requeue
    job_num = HydraConfig.get().job.num
    # From here on submitit's signal handlers are installed: tests may signal the job.
    (Path(cfg.out_dir) / f"started{job_num}").mkdir(parents=True, exist_ok=True)
    if restarts == 0:
        time.sleep(cfg.sleep_s)
    record = {
        "restart_count": restarts,
        "value": cfg.value,
        "job_num": job_num,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
        "host": socket.gethostname(),
    }
    out = Path(cfg.out_dir) / f"job{record['job_num']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record))
    return cfg.value * 10


if __name__ == "__main__":
    main()
