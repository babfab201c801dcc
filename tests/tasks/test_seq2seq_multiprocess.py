"""Seq2seq under two CPU processes (torchrun, gloo) against one: the same summaries in the same order, the same
loss and identical ROUGE, with an evaluation set that does not divide into the processes' batches and a
generation subset."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support import ROOT, torchrun

SUMMARIZATION = ROOT.parent / "shared" / "data" / "summarization"


@pytest.mark.slow
def test_two_processes_generate_the_same_summaries_in_order(tmp_path) -> None:
    """The same random-init weights on 1 and 2 processes: padded generations gathered without duplicates."""
    if not (SUMMARIZATION / "xsum" / "test.jsonl").is_file():
        pytest.skip(f"real XSum rows not found at {SUMMARIZATION}")
    worker = str(ROOT / "tests" / "tasks" / "seq2seq_predict_worker.py")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    outputs = {}
    for name, launcher in (("one", [sys.executable]), ("two", torchrun(2))):
        result = subprocess.run([*launcher, worker, str(tmp_path / f"{name}.json")], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[name] = json.loads((tmp_path / f"{name}.json").read_text())
    one, two = outputs["one"], outputs["two"]
    assert len(one["full"]["summaries"]) == 11 and len(one["subset"]["summaries"]) == 5
    assert all(one["full"]["summaries"]) and len(set(one["full"]["summaries"])) > 1  # input-dependent texts
    assert two["full"]["summaries"] == one["full"]["summaries"]
    assert two["subset"]["summaries"] == one["subset"]["summaries"] == one["full"]["summaries"][:5]
    assert (two["full"]["tokens"], two["full"]["examples"]) == (one["full"]["tokens"], 11)
    assert two["full"]["nll"] == pytest.approx(one["full"]["nll"], rel=1e-6)
    assert two["score"] == pytest.approx(one["score"], rel=1e-6)
