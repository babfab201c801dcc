"""Conformance suite, parametrized over the registries: every registered method on every tiny architecture and
every task family it supports. A method or family added later gets these checks by registering, not by editing a
list here.

Checks: the method applies on the meta device and for real with the same counts as the planner; only the method's
own parameters (declared adapter parameters, the head, the backbone parameters it claims) are trainable and get
gradients; its state round-trips; a preempted run resumes to the uninterrupted run's metrics; records have the
schema the analysis layer reads.
"""

from __future__ import annotations

import os
import signal

import pytest
import torch
from support import compose, tiny_overrides

from peftbench import methods, tasks
from peftbench.budget import count_on_meta
from peftbench.checkpoint import Preempted
from peftbench.config import validate
from peftbench.methods.base import adapter_parameters
from peftbench.models import build_model, hf_config, load_model_config, model_spec
from peftbench.models.roles import architecture
from peftbench.tasks import catalog

ARCHITECTURES = ["tiny_bert", "tiny_deberta", "tiny_roberta", "tiny_bart"]
# Schedules given in optimizer steps must fit the tiny runs' 6 steps (tests/support.py has the same rule).
RECORD_KEYS = {"schema_version", "run_id", "experiment", "status", "method", "model", "task", "family", "budget",
               "recipe", "seed", "config", "method_config", "started_at", "finished_at", "wall_time_s", "world_size",
               "versions", "git", "parameters", "data", "history", "total_steps", "metrics", "method_records",
               "cost", "peak_memory_mb"}


def family_task(family: str) -> str:
    """A task of the family (the model-level checks read no data; the run-level ones use classification)."""
    offline = [t for t, info in catalog.tasks().items() if info.family == family and t == "rotten_tomatoes"]
    return (offline or sorted(t for t, info in catalog.tasks().items() if info.family == family))[0]


def supports(model: str, family: str) -> bool:
    """Whether the architecture has roles for the family (peftbench/models/roles.py: BERT-likes have no seq2seq)."""
    config = load_model_config(model)
    model_type = (config.architecture or {}).get("model_type") or hf_config(config).model_type
    return family in architecture(model_type).heads


def architectures(method: str) -> list[str]:
    """The tiny architectures; a method that needs a quantised backbone (``Method.quantization``, QLoRA) runs on the
    real MiniLM at that precision instead, since random-init weights cannot be quantised."""
    return ["minilm"] if methods.get(method).method.quantization else ARCHITECTURES


def cases() -> list[tuple[str, str, str]]:
    found = []
    for family in tasks.available():
        for name in methods.available():
            supported = methods.get(name).method.families
            if supported is None or family in supported:
                found += [(name, model, family) for model in architectures(name) if supports(model, family)]
    return found


CASES = cases()
IDS = [f"{m}-{a}-{f}" for m, a, f in CASES]


def run_config(tmp_path, method: str, model: str, family: str, *extra: str):
    quantization = methods.get(method).method.quantization
    return validate(compose(tiny_overrides(tmp_path, f"method={method}", f"model={model}",
                                           f"task={family_task(family)}", *extra,
                                           *([f"model.quantization={quantization}"] if quantization else []))))


def applied(run):
    family = tasks.family_for(run.task)
    spec = model_spec(run.model, family.name)
    torch.manual_seed(0)
    model = build_model(run.model, family.num_labels(), model_class=family.model_class)
    method = methods.get(run.method_name).method(run.method, spec)
    return method.apply(model), method, spec


@pytest.mark.parametrize(("method", "model", "family"), CASES, ids=IDS)
def test_counts_on_meta_equal_the_real_model(tmp_path, method: str, model: str, family: str) -> None:
    run = run_config(tmp_path, method, model, family)
    planned = count_on_meta(run)
    real, _, spec = applied(run)
    counts = methods.count_parameters(real, spec)
    assert {k: planned[k] for k in counts} == counts
    assert counts["trainable"] == counts["adapter"] + counts["head"]
    assert (counts["head"] > 0) == bool(spec.head_patterns)  # seq2seq LM heads are tied: no head


@pytest.mark.parametrize(("method", "model", "family"), CASES, ids=IDS)
def test_only_the_methods_parameters_train(tmp_path, method: str, model: str, family: str) -> None:
    run = run_config(tmp_path, method, model, family)
    model_, method_, spec = applied(run)
    declared = set(adapter_parameters(model_))
    for name, parameter in model_.named_parameters():
        claimed = name in declared or spec.is_head(name) or method_.trains_backbone_parameter(name)
        assert parameter.requires_grad == claimed, name
    torch.manual_seed(0)
    batch = tasks.family_for(run.task).synthetic_batch(3, 9, 1000)
    # ids above 102: tiny BART counts <eos> (102) per row and needs the same number in every row
    batch["input_ids"].clamp_(min=103)
    if model == "tiny_bart":
        batch["input_ids"][:, -1] = 102  # BART classifies from the last <eos>
    model_(**method_.prepare_inputs(model_, batch)).loss.backward()
    moved = [n for n, p in model_.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert all(model_.get_parameter(n).requires_grad for n in moved)
    assert any(not spec.is_head(n) for n in moved), "no method parameter received a gradient"


@pytest.mark.parametrize("method", methods.available())
def test_state_round_trips(tmp_path, method: str) -> None:
    run = run_config(tmp_path, method, architectures(method)[0], "classification")
    model, first, _ = applied(run)
    first.extra_optimizers(model, 1e-3)
    first.on_train_start(model, 6)
    model(input_ids=torch.randint(5, 1000, (2, 7)), labels=torch.tensor([0, 1])).loss.backward()
    for step in (1, 2, 3):
        first.after_optimizer_step(model, step)
    state = first.state_dict()
    other_model, second, _ = applied(run)
    second.extra_optimizers(other_model, 1e-3)
    second.load_state_dict(state)
    second.on_train_start(other_model, 6)
    assert _plain(second.state_dict()) == _plain(state)


def _plain(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize("method", methods.available())
def test_preempted_run_resumes_to_the_same_record(tmp_path, monkeypatch, method: str) -> None:
    import peftbench.train as train

    extra = ("trainer.checkpoint_every=1", "logger=none")
    model = architectures(method)[0]
    straight = train.train(run_config(tmp_path / "straight", method, model, "classification", *extra))
    evaluate_step, calls = train.evaluate_step, {"n": 0}

    def signalling(*args, **kwargs):
        evaluate_step(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:  # after the first evaluation (step 3): the loop checkpoints and stops
            os.kill(os.getpid(), signal.SIGUSR1)

    monkeypatch.setattr(train, "evaluate_step", signalling)
    run = run_config(tmp_path / "stopped", method, model, "classification", *extra)
    with pytest.raises(Preempted):
        train.train(run)
    resumed = train.train(run)
    assert resumed["status"] == "completed" and resumed["resumed_at_steps"] == [3]
    assert resumed["metrics"] == straight["metrics"]
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in straight["history"]]
    assert resumed["parameters"] == straight["parameters"]
    assert RECORD_KEYS <= set(resumed), sorted(RECORD_KEYS - set(resumed))
    assert resumed["cost"]["examples_seen"] == straight["cost"]["examples_seen"] > 0
    # methods that inject no linear modules (full, BitFit, input-level prompts) have no matrices to record
    no_matrices = method in ("full", "bitfit") or methods.get(method).method.knob_kind == "virtual_tokens"
    assert resumed["method_records"]["matrices"] or no_matrices
