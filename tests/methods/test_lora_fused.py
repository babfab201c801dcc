"""LoRA's fused forward (peftbench/methods/lora/layer.py, peftbench/methods/lowrank.py): the same values and
gradients as PEFT's own ``lora.Linear``, PEFT's forward wherever the module is not plain LoRA, and PEFT's state."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import Linear as PeftLoraLinear
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from peftbench import methods
from peftbench.methods.lora.layer import FusedLoRALinear, fuse
from peftbench.methods.lowrank import add_low_rank_
from peftbench.models import load_model_config, model_spec

SPEC = model_spec(load_model_config("tiny_bert"))
TARGETS = SPEC.target_regex(("query", "key", "value", "attention_output", "ffn_in", "ffn_out"))


def tiny_bert() -> nn.Module:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32, num_labels=3)
    return BertForSequenceClassification(config)


def peft_lora(alpha: float = 16.0, **options: object) -> nn.Module:
    """tiny_bert with PEFT's LoRA (r=8) and random B, so that the update is not zero."""
    config = LoraConfig(r=8, lora_alpha=alpha, target_modules=TARGETS, **options)
    model = inject_adapter_in_model(config, tiny_bert())
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return model


def batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    mask = torch.ones(4, 12, dtype=torch.long)
    mask[1, 7:] = 0
    return {"input_ids": torch.randint(1, 100, (4, 12), generator=generator), "attention_mask": mask,
            "labels": torch.tensor([0, 1, 2, 1])}


def loss_and_gradients(model: nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    torch.manual_seed(3)  # the same dropout masks on both sides
    model.train()
    model.zero_grad(set_to_none=True)
    loss = model(**batch()).loss
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_peft_values_at_the_default_scale(dropout: float) -> None:
    """alpha / r = 2, a power of two: scaling inside the matmul rounds exactly as scaling after it, so the forward
    is bit for bit PEFT's. Gradients agree to rounding only: the graph differs (one in-place node instead of a
    sum), so autograd adds the two contributions to an input's gradient in another order."""
    peft_model, fused_model = peft_lora(lora_dropout=dropout), peft_lora(lora_dropout=dropout)
    assert fuse(fused_model) == 12  # two layers x six matrix types
    expected_loss, expected = loss_and_gradients(peft_model)
    loss, gradients = loss_and_gradients(fused_model)
    assert torch.equal(loss, expected_loss)
    assert gradients.keys() == expected.keys() and any("lora_A" in n for n in gradients)
    for name, gradient in gradients.items():
        torch.testing.assert_close(gradient, expected[name], rtol=1e-5, atol=1e-7, msg=name)


def test_within_rounding_at_other_scales() -> None:
    peft_model, fused_model = peft_lora(alpha=12.0), peft_lora(alpha=12.0)
    fuse(fused_model)
    expected_loss, expected = loss_and_gradients(peft_model)
    loss, gradients = loss_and_gradients(fused_model)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-6, atol=1e-6)
    for name, gradient in gradients.items():
        torch.testing.assert_close(gradient, expected[name], rtol=1e-5, atol=1e-6)


def test_the_method_fuses_and_keeps_peft_state() -> None:
    model = methods.get("lora").method(methods.get("lora").config(), SPEC).apply(tiny_bert())
    layers = [m for m in model.modules() if isinstance(m, PeftLoraLinear)]
    assert len(layers) == 12 and all(type(m) is FusedLoRALinear for m in layers)
    assert model.state_dict().keys() == peft_lora().state_dict().keys()


def test_merged_modules_and_variants_take_peft_forward() -> None:
    """Merged, disabled and DoRA modules keep PEFT's forward; each gives what PEFT's own module gives."""
    for prepare in (lambda m: m.merge(), lambda m: m.enable_adapters(False)):
        peft_model, fused_model = peft_lora(), peft_lora()
        fuse(fused_model)
        for model in (peft_model, fused_model):
            for module in model.modules():
                if isinstance(module, PeftLoraLinear):
                    prepare(module)
        assert torch.equal(fused_model.eval()(**batch()).logits, peft_model.eval()(**batch()).logits)
    dora, fused_dora = peft_lora(use_dora=True), peft_lora(use_dora=True)
    fuse(fused_dora)
    assert torch.equal(loss_and_gradients(fused_dora)[0], loss_and_gradients(dora)[0])


def test_autocast_gives_peft_dtype_and_values() -> None:
    peft_model, fused_model = peft_lora(), peft_lora()
    fuse(fused_model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = peft_model.eval()(**batch()).logits
        logits = fused_model.eval()(**batch()).logits
    assert logits.dtype == expected.dtype
    torch.testing.assert_close(logits, expected, rtol=0.05, atol=0.05)


def test_only_plain_linear_layers_are_fused() -> None:
    """A layer over anything but ``nn.Linear`` (bitsandbytes' Linear4bit subclasses it) keeps PEFT's class."""

    class Subclassed(nn.Linear):
        pass

    model = peft_lora()
    first = model.bert.encoder.layer[0].attention.self.query
    first.base_layer.__class__ = Subclassed
    assert fuse(model) == 11 and type(first) is PeftLoraLinear


def test_add_low_rank_edge_cases() -> None:
    result, down, up = torch.randn(2, 3, 5), torch.randn(2, 3, 4), torch.randn(5, 4)
    expected = result + down @ up.T * 0.5
    torch.testing.assert_close(add_low_rank_(result.clone(), down, up, 0.5), expected)
    strided = result.clone().transpose(0, 1)  # no flat view: computed out of place
    torch.testing.assert_close(add_low_rank_(strided, down.transpose(0, 1), up, 0.5), expected.transpose(0, 1))
    empty = torch.randn(2, 3, 5)  # rank 0 (a SoRA module with every gate at zero)
    assert torch.equal(add_low_rank_(empty.clone(), torch.zeros(2, 3, 0), torch.zeros(5, 0), 2.0), empty)
