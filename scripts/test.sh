#!/usr/bin/env bash
# The whole test suite, as CI runs it: set up .venv, start the single-node SLURM cluster when root, run pytest.
# Tests run in PEFTBENCH_TEST_WORKERS pytest-xdist workers (default 2, one per core of the CI machine; 0 runs
# them in this process). `bash scripts/test.sh tests/test_x.py -k name` runs a selection; an explicit -n/-p
# no:xdist among the arguments wins. --dist loadgroup keeps each @pytest.mark.xdist_group on one worker.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
# One BLAS thread per process: tests start several processes (xdist workers, torchrun, SLURM jobs) on 2 cores.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
parallel=(-n "${PEFTBENCH_TEST_WORKERS:-2}" --dist loadgroup --no-loadscope-reorder)
for arg in "$@"; do
  case $arg in -n|-n[0-9]*|--numprocesses|--numprocesses=*|-pno:xdist|no:xdist) parallel=() ;; esac
done
exec .venv/bin/python -m pytest "${parallel[@]}" "$@"
