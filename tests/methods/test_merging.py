"""Merged evaluation (peftbench/methods/merging.py): the same outputs through W0 + ΔW, the adapted modules put back
untouched, and only modules that are exactly ``base(x) + x ΔWᵀ`` merged."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch
from peft import LoraConfig, inject_adapter_in_model
from support import compose, tiny_overrides
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from peftbench import methods
from peftbench.methods.merging import merged_for_evaluation
from peftbench.methods.sora.layer import SoRALinear, prune
from peftbench.models import load_model_config, model_spec
from peftbench.train import train

SPEC = model_spec(load_model_config("tiny_bert"))
ADAPTED = 2 * 6  # tiny_bert: 2 layers x the six matrix types


def tiny_bert() -> nn.Module:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32, num_labels=3)
    return BertForSequenceClassification(config)


def with_method(name: str) -> nn.Module:
    """tiny_bert with ``name`` applied and every adapter parameter random (LoRA's B, AdaLoRA's Λ and SoRA's W_u
    start at zero, which would make ΔW = 0 and the comparison empty)."""
    model = methods.get(name).method(methods.get(name).config(), SPEC).apply(tiny_bert())
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in methods.base.adapter_parameters(model).values():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return model.eval()


def inputs() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    mask = torch.ones(4, 12, dtype=torch.long)
    mask[1, 7:] = 0
    return {"input_ids": torch.randint(1, 100, (4, 12), generator=generator), "attention_mask": mask}


def outputs(model: nn.Module) -> torch.Tensor:
    """The last hidden states (values of order 1, unlike the near-zero logits of a fresh head) and the logits."""
    result = model(**inputs(), output_hidden_states=True)
    return torch.cat([result.hidden_states[-1].flatten(), result.logits.flatten()]).detach()


def snapshot(model: nn.Module) -> tuple[dict[str, nn.Module], dict[str, torch.Tensor]]:
    return dict(model.named_modules()), {n: p.detach().clone() for n, p in model.named_parameters()}


def assert_restored(model: nn.Module, before: tuple[dict[str, nn.Module], dict[str, torch.Tensor]]) -> None:
    modules, parameters = before
    after = dict(model.named_modules())
    assert after.keys() == modules.keys() and all(after[n] is modules[n] for n in modules)
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, parameters[name]), name  # bit for bit: nothing merged in place


@pytest.mark.parametrize("name", ["lora", "adalora", "sora"])
def test_merged_outputs_equal_and_modules_restored(name: str) -> None:
    model = with_method(name)
    before = snapshot(model)
    expected = outputs(model)
    with merged_for_evaluation(model) as swapped:
        merged = outputs(model)
        assert not any(methods.base.declared_names(m) for m in model.modules())  # adapters really out of the path
    assert swapped == ADAPTED
    assert (expected - outputs(tiny_bert().eval())).abs().max() > 0.1  # ΔW changes the outputs
    torch.testing.assert_close(merged, expected, rtol=1e-5, atol=1e-5)
    assert_restored(model, before)
    assert torch.equal(outputs(model), expected)


def test_pruned_sora_modules_merge_at_any_rank_including_zero() -> None:
    model = with_method("sora")
    with torch.no_grad():
        for index, (name, module) in enumerate(list(model.named_modules())):
            if isinstance(module, SoRALinear):
                module.gate[: index % (module.r + 1)] = 0.0  # ranks from r down to 0
                methods.base.replace_module(model, name, prune(module))
    expected = outputs(model)
    with merged_for_evaluation(model) as swapped:
        merged = outputs(model)
    assert swapped == ADAPTED
    torch.testing.assert_close(merged, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["houlsby", "prefix", "bitfit"])
def test_methods_that_are_not_a_weight_delta_are_left_alone(name: str) -> None:
    model = with_method(name)
    before = snapshot(model)
    with merged_for_evaluation(model) as swapped:
        assert swapped == 0
    assert_restored(model, before)


def test_peft_variants_are_not_merged() -> None:
    dora = inject_adapter_in_model(LoraConfig(r=4, target_modules=["query", "value"], use_dora=True), tiny_bert())
    with merged_for_evaluation(dora) as swapped:
        assert swapped == 0
    plain = inject_adapter_in_model(LoraConfig(r=4, target_modules=["query", "value"]), tiny_bert())
    with merged_for_evaluation(plain) as swapped:
        assert swapped == 4


def test_training_flags_restored_and_modules_back_after_an_error() -> None:
    model = with_method("lora").train()
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="inside"), merged_for_evaluation(model):
        model.eval()
        raise RuntimeError("inside")
    assert_restored(model, before)
    # The modules swapped out missed that .eval(); they come back with the flag set inside, like the rest.
    assert not any(m.training for m in model.modules())


def test_run_with_and_without_merging_trains_identically(tmp_path, monkeypatch) -> None:
    """Evaluation never touches training: the same losses bit for bit, and the same scores."""
    swaps = []

    @contextlib.contextmanager
    def counted(model: nn.Module) -> Iterator[int]:
        with merged_for_evaluation(model) as swapped:
            swaps.append(swapped)
            yield swapped

    monkeypatch.setattr("peftbench.train.merged_for_evaluation", counted)
    records = [train(compose(tiny_overrides(tmp_path / str(merge), "method=adalora",
                                            f"trainer.merge_for_evaluation={merge}"))) for merge in (True, False)]
    assert swaps == [ADAPTED] * 3  # the merged run's two evaluations and its test sets; the other run none
    merged, plain = ([h["train_loss"] for h in r["history"]] for r in records)
    assert merged == plain
    for key, value in records[1]["metrics"]["final"].items():
        assert records[0]["metrics"]["final"][key] == pytest.approx(value, abs=1e-6), key
