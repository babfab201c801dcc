"""Throwaway Hydra app for the SLURM tests: each job writes <out_dir>/job<N>.json and sleeps a little.

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
    time.sleep(cfg.sleep_s)
    record = {
        "value": cfg.value,
        "job_num": HydraConfig.get().job.num,
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
