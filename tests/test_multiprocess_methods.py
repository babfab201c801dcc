"""AdaLoRA and SoRA on two CPU processes (torchrun, gloo) against one process at the same global batch.

Rank allocation (AdaLoRA's masks) and gate thresholding (SoRA's proximal step) run on every rank from
all-reduced gradients, so the ranks must agree exactly with each other, and with one process up to float
summation order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support import ROOT, torchrun

NO_DROPOUT = ["++model.architecture.hidden_dropout_prob=0", "++model.architecture.attention_probs_dropout_prob=0"]
METHODS = {
    "adalora": ["method=adalora", "budget=r1", "method.t_i=1", "method.t_f=2", "method.delta_t=1"],
    "sora": ["method=sora", "method.threshold=0.05"],  # gates reach zero within the 6 steps
}
# Max |difference| of the logged train losses, 1 vs 2 processes. Measured 1.2e-7 for both methods (CPU, gloo,
# torch 2.13); lora_E differed by at most 1.8e-10 (AdaLoRA), the SoRA gates not at all.
LOSS_TOLERANCE = 1e-5

# Wraps peftbench.train.fit: when training ends (before SoRA prunes its gates in on_train_end), every rank
# dumps its adapter state to <dump dir>/rank<RANK>.pt.
DRIVER = """
import os, sys
from pathlib import Path
import torch
import peftbench.train as train
from peftbench.methods.adalora.layer import SVDLinear
from peftbench.methods.sora.layer import SoRALinear

dump = Path(sys.argv[1])
fit = train.fit

def dumping(run, accelerator, parts, *args, **kwargs):
    state = fit(run, accelerator, parts, *args, **kwargs)
    model = accelerator.unwrap_model(parts.model)
    tensors = {}
    for name, module in model.named_modules():
        if isinstance(module, SVDLinear):
            tensors[name + ".lora_E"] = module.lora_E.detach().cpu().clone()
        if isinstance(module, SoRALinear):
            tensors[name + ".gate"] = module.gate.detach().cpu().clone()
    allocator = getattr(parts.method, "allocator", None)
    masks = {k: v.cpu().clone() for k, v in allocator.masks.items()} if allocator is not None else {}
    dump.mkdir(parents=True, exist_ok=True)
    rank = os.environ.get("RANK", "0")
    torch.save({"tensors": tensors, "masks": masks, "history": [dict(h) for h in state.history]},
               dump / f"rank{rank}.pt")
    return state

train.fit = dumping
from peftbench.cli import main
main(sys.argv[2:])
"""


def launch(tmp_path: Path, launcher: list[str], name: str, method: str) -> tuple[dict, Path]:
    args = ["model=tiny_bert", "trainer=tiny", "task.max_train_samples=64", "task.max_eval_samples=64",
            f"paths.results_dir={tmp_path}", f"paths.report_dir={tmp_path / 'reports'}", f"experiment_name={name}",
            *NO_DROPOUT, *METHODS[method]]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    dump = tmp_path / f"dump-{name}"
    driver = tmp_path / "driver.py"  # a file: torchrun takes a script, not -c
    driver.write_text(DRIVER)
    result = subprocess.run([*launcher, str(driver), str(dump), *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / name).rglob("run.json"))
    logs = list((tmp_path / name).rglob("metrics.jsonl"))
    assert len(runs) == 1 and len(logs) == 1, (runs, logs)  # only rank 0 writes the record and the log
    rows = [json.loads(line) for line in logs[0].read_text().splitlines()]
    assert [row["step"] for row in rows if "train/loss" in row] == list(range(1, 7))  # each step logged once
    return json.loads(runs[0].read_text()), dump


def train_losses(record: dict, dump: Path) -> list[float]:
    """Per-evaluation mean train losses of the record followed by the per-step losses logged in metrics.jsonl."""
    rows = [json.loads(line) for line in next(dump.parent.rglob(f"{record['experiment']}/*/metrics.jsonl"))
            .read_text().splitlines()]
    return [h["train_loss"] for h in record["history"]] + [row["train/loss"] for row in rows if "train/loss" in row]


def gate_pattern(tensors: dict[str, torch.Tensor]) -> dict[str, list[bool]]:
    return {name: (value.view(-1) != 0).tolist() for name, value in tensors.items()}


@pytest.mark.slow
@pytest.mark.parametrize("method", list(METHODS))
def test_method_on_two_processes_matches_one_process(tmp_path, method: str) -> None:
    two, two_dump = launch(tmp_path, torchrun(2), "two", method)  # a free master port: tests run in parallel
    one, one_dump = launch(tmp_path, [sys.executable], "one", method)
    assert (two["world_size"], one["world_size"], two["status"]) == (2, 1, "completed")

    # Every rank holds the same adapter state, bit for bit: masks/gates are decided from all-reduced gradients.
    rank0, rank1 = torch.load(two_dump / "rank0.pt"), torch.load(two_dump / "rank1.pt")
    assert rank0["tensors"] and rank0["tensors"].keys() == rank1["tensors"].keys()
    for name, value in rank0["tensors"].items():
        assert torch.equal(value, rank1["tensors"][name]), name
    assert rank0["masks"].keys() == rank1["masks"].keys()
    assert all(torch.equal(mask, rank1["masks"][name]) for name, mask in rank0["masks"].items())
    assert rank0["history"] == rank1["history"]  # losses reduced over ranks, metrics gathered: the same

    # One process at the same global batch: the same ranks and gate pattern, losses up to summation order.
    single = torch.load(one_dump / "rank0.pt")
    pattern = gate_pattern(rank0["tensors"])
    assert not all(all(kept) for kept in pattern.values())  # some rank was masked / gated off: a real test
    assert gate_pattern(single["tensors"]) == pattern
    assert {k: v.tolist() for k, v in single["masks"].items()} == {k: v.tolist() for k, v in rank0["masks"].items()}
    assert two["method_records"]["final_ranks"] == one["method_records"]["final_ranks"]
    assert two["method_records"]["rank_history"] == one["method_records"]["rank_history"]
    assert two["parameters"] == one["parameters"]
    assert [h["method"] for h in two["history"]] == [h["method"] for h in one["history"]]
    losses_one, losses_two = train_losses(one, one_dump), train_losses(two, two_dump)
    difference = max(abs(a - b) for a, b in zip(losses_one, losses_two, strict=True))
    values = max(abs(v - single["tensors"][k]).max().item() for k, v in rank0["tensors"].items())
    print(f"{method}: max |train loss difference| 1 vs 2 processes {difference:.3g}; "
          f"max |lora_E or gate difference| {values:.3g}")
    assert difference <= LOSS_TOLERANCE
    assert two["metrics"]["final"] == pytest.approx(one["metrics"]["final"], abs=1 / 64)  # at most one example
