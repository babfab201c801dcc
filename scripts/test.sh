#!/usr/bin/env bash
# The whole test suite, as CI runs it: set up .venv, start the single-node SLURM cluster when root, run pytest.
#
# Tests run on PEFTBENCH_TEST_WORKERS pytest-xdist workers (default 2, one per core of the CI machine; 0 runs
# them in this process). `bash scripts/test.sh tests/test_x.py -k name` runs a selection; an -n or -p no:xdist
# among the arguments wins. --dist loadfile: each test file runs on one worker, so a module-scoped fixture
# (the learning check's runs, test_resume's uninterrupted runs, ...) is computed once and the SLURM tests
# submit one at a time, as before. (Not --dist loadgroup: with pytest 9.2 it silently stops grouping,
# pytest-xdist issue #1386.) tests/conftest.py orders the files longest first, hence --no-loadscope-reorder
# (pytest-xdist 3.8).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
# One BLAS thread per process: tests start several processes (xdist workers, torchrun, SLURM jobs) on 2 cores.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
parallel=(-n "${PEFTBENCH_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder)
for arg in "$@"; do
  case $arg in -n*|--numprocesses|--numprocesses=*|-pno:xdist|no:xdist) parallel=() ;; esac
done
exec .venv/bin/python -m pytest "${parallel[@]}" "$@"
