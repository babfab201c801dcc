"""Bottleneck adapters (houlsby, pfeiffer, parallel): identity at step 0 on every tiny architecture, the sites
(no cross-attention on BART), the forward equations on hand-made numbers, parameter counts, config checks."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from support import compose, tiny_overrides
from torch import nn

from peftbench import methods, tasks
from peftbench.config import ConfigError, validate
from peftbench.methods.base import adapted_modules, count_parameters
from peftbench.methods.houlsby.config import ACTIVATION_NAMES
from peftbench.methods.houlsby.layer import ACTIVATIONS, Bottleneck, SequentialAdapter, parameter_count
from peftbench.methods.parallel.layer import FFNInputTap, ParallelAdapter, Stash
from peftbench.models import build_model, model_spec

ADAPTERS = ["houlsby", "pfeiffer", "parallel"]
ARCHITECTURES = ["tiny_bert", "tiny_deberta", "tiny_roberta", "tiny_bart"]
SITES_PER_BLOCK = {"houlsby": 2, "pfeiffer": 1, "parallel": 1}


def adapted(tmp_path, method: str, model: str, *extra: str):
    """(frozen backbone, the same weights with the method applied, method, spec), dropout off."""
    run = validate(compose(tiny_overrides(tmp_path, f"method={method}", f"model={model}", *extra)))
    family = tasks.family_for(run.task)
    spec = model_spec(run.model, family.name)
    torch.manual_seed(0)
    backbone = build_model(run.model, family.num_labels(), model_class=family.model_class).eval()
    method_ = methods.get(method).method(run.method, spec)
    model_ = method_.apply(copy.deepcopy(backbone)).eval()
    return backbone, model_, method_, spec


def inputs(model: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 1000, (3, 9), generator=g)
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0  # one padded row
    if model == "tiny_bart":
        ids[:, -1] = 102  # BART classifies from the last <eos>
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("model", ARCHITECTURES)
@pytest.mark.parametrize("method", ADAPTERS)
def test_identity_at_step_zero_and_the_adapters_are_on_the_path(tmp_path, method: str, model: str) -> None:
    backbone, model_, _, spec = adapted(tmp_path, method, model, "method.bottleneck=5")
    blocks = spec.dims.encoder_layers + spec.dims.decoder_layers  # BART: encoder and decoder layers
    per_adapter = parameter_count(spec.dims.hidden, 5)
    assert per_adapter == 2 * 32 * 5 + 5 + 32  # 2hd + d + h
    counts = count_parameters(model_, spec)
    assert counts["adapter"] == SITES_PER_BLOCK[method] * blocks * per_adapter and counts["other"] == 0
    batch = inputs(model)
    with torch.no_grad():
        assert torch.equal(model_(**batch).logits, backbone(**batch).logits)
        for module in adapted_modules(model_).values():  # any non-zero W_up must change the outputs
            bias = module.adapter.up.bias  # not a constant: LayerNorm would remove a uniform shift
            bias.copy_(torch.linspace(-1.0, 1.0, bias.numel()))
        assert not torch.allclose(model_(**batch).logits, backbone(**batch).logits)


@pytest.mark.parametrize("method", ADAPTERS)
def test_bart_sites_are_self_attention_and_ffn_of_every_layer_never_cross_attention(tmp_path, method: str) -> None:
    _, model_, _, spec = adapted(tmp_path, method, "tiny_bart")
    names = set(adapted_modules(model_))
    assert not [n for n in names if "encoder_attn" in n]
    expected = {f"model.{part}.layers.{i}.fc2" for part in ("encoder", "decoder") for i in range(2)}
    if method == "houlsby":
        expected |= {f"model.{part}.layers.{i}.self_attn.out_proj" for part in ("encoder", "decoder") for i in range(2)}
    assert names == expected
    for name in ("model.decoder.layers.0.encoder_attn.out_proj", "model.decoder.layers.1.encoder_attn.out_proj"):
        assert type(model_.get_submodule(name)) is nn.Linear
    if method == "parallel":
        taps = [n for n, m in model_.named_modules() if isinstance(m, FFNInputTap)]
        assert sorted(taps) == sorted(n.replace("fc2", "fc1") for n in expected)


def test_houlsby_can_train_the_layernorms_as_the_paper(tmp_path) -> None:
    _, model_, method_, spec = adapted(tmp_path, "houlsby", "tiny_bert", "method.train_layernorm=true")
    trained = {n for n, p in model_.named_parameters() if p.requires_grad}
    norms = {n for n in trained if "LayerNorm" in n}
    assert len(norms) == 2 * (1 + 2 * 2)  # embeddings + two per block, weight and bias
    assert count_parameters(model_, spec)["other"] == 5 * 2 * 32


# --- the equations on hand-made numbers ------------------------------------------------------------------


def hand_bottleneck(activation: str) -> Bottleneck:
    """h = 2, d = 1: W_down = [1, -1], b_down = 0.5, W_up = [2, 3]^T, b_up = [0.1, -0.2]."""
    module = Bottleneck(2, 1, activation)
    with torch.no_grad():
        module.down.weight.copy_(torch.tensor([[1.0, -1.0]]))
        module.down.bias.copy_(torch.tensor([0.5]))
        module.up.weight.copy_(torch.tensor([[2.0], [3.0]]))
        module.up.bias.copy_(torch.tensor([0.1, -0.2]))
    return module


def linear(weight: list[list[float]], bias: list[float]) -> nn.Linear:
    module = nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        module.weight.copy_(torch.tensor(weight))
        module.bias.copy_(torch.tensor(bias))
    return module


@pytest.mark.parametrize(("activation", "f"), [("relu", lambda u: max(u, 0.0)),
                                               ("swish", lambda u: u / (1 + math.exp(-u))),
                                               ("gelu", lambda u: 0.5 * u * (1 + math.erf(u / math.sqrt(2))))])
def test_sequential_adapter_forward_by_hand(activation: str, f) -> None:
    # z = W x + b = [[1, 2], [0, 1]] [1, 1] + [0, -1] = [3, 0]; D z + b_down = 3 - 0 + 0.5 = 3.5
    base = linear([[1.0, 2.0], [0.0, 1.0]], [0.0, -1.0])
    module = SequentialAdapter(base, 1, activation)
    module.adapter = hand_bottleneck(activation)
    out = module(torch.tensor([[1.0, 1.0]]))
    u = f(3.5)
    expected = [3.0 + 2 * u + 0.1, 0.0 + 3 * u - 0.2]  # z + U f(D z + b_down) + b_up
    assert out.tolist()[0] == pytest.approx(expected, abs=1e-6)


def test_parallel_adapter_forward_by_hand() -> None:
    # FFN input x = [1, 3]; W_1 = I (2 -> 2), a = [1, 3]; W_2 = [[1, 1], [0, 2]], b_2 = [0, 1]: z' = [4, 7].
    # Branch: D x + b_down = 1 - 3 + 0.5 = -1.5 -> relu 0; so U·0 + b_up = [0.1, -0.2], times s = 4.
    stash = Stash()
    tap = FFNInputTap(linear([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0]), stash)
    adapter = ParallelAdapter(linear([[1.0, 1.0], [0.0, 2.0]], [0.0, 1.0]), stash, 1, 4.0)
    adapter.adapter = hand_bottleneck("relu")
    x = torch.tensor([[1.0, 3.0]])
    assert adapter(tap(x)).tolist()[0] == pytest.approx([4.0 + 0.4, 7.0 - 0.8])
    assert stash.value is None  # read once, then emptied
    # x = [3, 1]: D x + b_down = 2.5 -> U 2.5 + b_up = [5.1, 7.3]; a = x, z' = [4, 3]
    x = torch.tensor([[3.0, 1.0]])
    assert adapter(tap(x)).tolist()[0] == pytest.approx([4.0 + 4 * 5.1, 3.0 + 4 * 7.3])
    with pytest.raises(RuntimeError, match="before its input projection"):
        adapter(x)


def test_parallel_model_survives_deepcopy_with_its_own_stashes(tmp_path) -> None:
    _, model_, _, _ = adapted(tmp_path, "parallel", "tiny_roberta")
    with torch.no_grad():
        for module in adapted_modules(model_).values():
            module.adapter.up.bias.copy_(torch.linspace(-1.0, 1.0, module.adapter.up.bias.numel()))
    twin = copy.deepcopy(model_)
    batch = inputs("tiny_roberta")
    with torch.no_grad():
        assert torch.equal(twin(**batch).logits, model_(**batch).logits)
    pairs = [(m.stash, twin.get_submodule(n).stash) for n, m in adapted_modules(model_).items()]
    assert all(a is not b for a, b in pairs)


def test_zero_up_projection_still_gets_gradients_to_start_learning(tmp_path) -> None:
    _, model_, _, _ = adapted(tmp_path, "houlsby", "tiny_bert")
    model_.train()
    model_(**inputs("tiny_bert"), labels=torch.tensor([0, 1, 0])).loss.backward()
    ups = [m.adapter.up.weight.grad for m in adapted_modules(model_).values()]
    assert all(g is not None and g.abs().sum() > 0 for g in ups)


# --- configs ---------------------------------------------------------------------------------------------


def test_registered_with_capabilities_and_paper_defaults() -> None:
    for name in ADAPTERS:
        method = methods.get(name).method
        assert (method.knob, method.knob_kind, method.budget_binds) == ("bottleneck", "bottleneck", "trainable")
    houlsby, pfeiffer, parallel = (methods.get(n).config() for n in ADAPTERS)
    assert (houlsby.activation, houlsby.target_types) == ("swish", ["attention_output", "ffn_out"])
    assert (pfeiffer.activation, pfeiffer.target_types) == ("relu", ["ffn_out"])
    assert (parallel.activation, parallel.scale, parallel.init) == ("relu", 2.0, "kaiming")
    assert tuple(ACTIVATIONS) == ACTIVATION_NAMES  # the config checks names without importing the layer (torch)


@pytest.mark.parametrize(("overrides", "message"), [
    (["method=houlsby", "method.bottleneck=0"], "houlsby: bottleneck"),
    (["method=houlsby", "method.activation=sigmoid"], "houlsby: activation"),
    (["method=pfeiffer", "method.target_types=[query]"], "pfeiffer: target_types"),
    (["method=pfeiffer", "method.init=xavier"], "pfeiffer: init"),
    (["method=parallel", "method.scale=0"], "parallel: scale"),
    (["method=parallel", "method.target_types=[attention_output]"], "parallel: target_types"),
    (["method=houlsby", "method.init_std=0"], "houlsby: init_std"),
])
def test_bad_settings_fail_with_one_line(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(compose(overrides))


def test_budget_groups_set_the_paper_bottlenecks_and_leave_parallel_alone() -> None:
    for budget, sizes in (("r1", (4, 8)), ("r2", (8, 16)), ("r4", (16, 32)), ("r8", (32, 64))):
        got = [validate(compose([f"method={m}", f"budget={budget}"])).method.bottleneck for m in ADAPTERS]
        assert got == [*sizes, 64]
