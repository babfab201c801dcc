"""Per-layer prefix methods (prefix, ptuning_v2, mam): masks with padding, every BART site reached, cached
generation, DeBERTa-v2, counts against the formulas, folding the reparameterisation, MAM's parallel adapter."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from peftbench.methods import count_parameters, get
from peftbench.methods.mam.layer import FFNOutput
from peftbench.methods.prefix.layer import PrefixDisentangledSelfAttention, PrefixSite, prefix_sites
from peftbench.models import build_model, load_model_config, model_spec

METHODS = ["prefix", "ptuning_v2", "mam"]
ARCHITECTURES = ["tiny_bert", "tiny_roberta", "tiny_deberta", "tiny_bart"]
EOS = 102  # tiny BART's <eos>; BART classifies from the last one


def build(method: str, model: str, family: str = "classification", seed: int = 0, **overrides):
    cfg = load_model_config(model)
    spec = model_spec(cfg, family)
    torch.manual_seed(seed)
    model_class = "AutoModelForSeq2SeqLM" if family == "seq2seq" else "AutoModelForSequenceClassification"
    net = build_model(cfg, None if family == "seq2seq" else 2, model_class=model_class)
    entry = get(method)
    config = entry.config(**{"dropout": 0.0, **overrides})
    applier = entry.method(config, spec)
    net = applier.apply(net)
    if method == "mam":  # make the adapter matter (it starts at zero)
        for module in net.modules():
            if isinstance(module, FFNOutput):
                nn.init.normal_(module.adapter.up.weight, std=0.5)
    return net.eval(), applier, spec


def tokens(length: int, seed: int) -> torch.Tensor:
    ids = torch.randint(200, 1000, (length,), generator=torch.Generator().manual_seed(seed))
    ids[-1] = EOS
    return ids


@pytest.mark.parametrize("model", ARCHITECTURES)
@pytest.mark.parametrize("method", METHODS)
def test_a_padded_example_gives_the_same_logits_as_alone(method: str, model: str) -> None:
    net, applier, _ = build(method, model)
    short, long = tokens(5, 1), tokens(9, 2)
    ids = torch.zeros(2, 9, dtype=torch.long)
    ids[0, :5], ids[1] = short, long
    mask = torch.zeros(2, 9, dtype=torch.long)
    mask[0, :5], mask[1] = 1, 1
    with torch.no_grad():
        batch = applier.prepare_inputs(net, {"input_ids": ids, "attention_mask": mask})
        padded = net(**batch).logits
        alone = net(input_ids=short[None], attention_mask=torch.ones(1, 5, dtype=torch.long)).logits
        full = net(input_ids=long[None]).logits
    assert (padded[0] - alone[0]).abs().max() <= 1e-6
    assert (padded[1] - full[0]).abs().max() <= 1e-6
    assert applier.virtual_tokens() == 0 and batch["input_ids"] is ids  # no positions added


@pytest.mark.parametrize("model", ARCHITECTURES)
def test_every_site_has_a_prefix_and_it_changes_the_output(model: str) -> None:
    net, _, spec = build("ptuning_v2", model)
    sites = prefix_sites(net)
    dims = spec.dims
    assert len(sites) == dims.encoder_layers + 2 * dims.decoder_layers
    ids = tokens(7, 3)[None]
    with torch.no_grad():
        before = net(input_ids=ids).logits
        for site in sites.values():
            site.kv.zero_()
        zeroed = net(input_ids=ids).logits
    assert (before - zeroed).abs().max() > 1e-4
    if model == "tiny_deberta":
        assert all(isinstance(net.get_submodule(n.rpartition(".")[0]), PrefixDisentangledSelfAttention) for n in sites)


@pytest.mark.parametrize("kind", ["encoder.layers.0.self_attn", "decoder.layers.1.self_attn",
                                  "decoder.layers.0.encoder_attn"])
def test_bart_prefix_reaches_encoder_decoder_and_cross_attention(kind: str) -> None:
    net, _, _ = build("ptuning_v2", "tiny_bart", family="seq2seq")
    sites = prefix_sites(net)
    site = sites[f"model.{kind}.prefix"]
    ids = tokens(7, 4)[None]
    decoder = torch.tensor([[EOS, 300, 301, 302]])
    with torch.no_grad():
        before = net(input_ids=ids, decoder_input_ids=decoder)
        site.kv.add_(torch.randn_like(site.kv))
        after = net(input_ids=ids, decoder_input_ids=decoder)
    # peft's BART prefix leaves the encoder output bit-identical; here every site moves the logits
    assert (before.logits - after.logits).abs().max() > 1e-6
    encoder_moved = (before.encoder_last_hidden_state - after.encoder_last_hidden_state).abs().max()
    assert (encoder_moved > 1e-3) if kind.startswith("encoder") else (encoder_moved == 0)


@pytest.mark.parametrize("method", ["prefix", "ptuning_v2", "mam"])
def test_bart_cached_generation_equals_greedy_decoding_without_cache(method: str) -> None:
    net, _, _ = build(method, "tiny_bart", family="seq2seq", seed=1)
    ids = torch.zeros(2, 8, dtype=torch.long)
    ids[0, :5], ids[1] = tokens(5, 5), tokens(8, 6)
    mask = (ids != 0).long()
    net.generation_config.forced_eos_token_id = None  # BART's default forces <eos> (2) at the last step
    common = {"max_new_tokens": 6, "min_new_tokens": 6, "do_sample": False, "num_beams": 1, "output_logits": True,
              "return_dict_in_generate": True}
    with torch.no_grad():
        cached = net.generate(input_ids=ids, attention_mask=mask, use_cache=True, **common)
        plain = net.generate(input_ids=ids, attention_mask=mask, use_cache=False, **common)
        # and by hand: a full forward over everything decoded so far, at every step
        full = [net(input_ids=ids, attention_mask=mask, decoder_input_ids=cached.sequences[:, :step + 1]).logits[:, -1]
                for step in range(6)]
    assert torch.equal(cached.sequences, plain.sequences)
    assert torch.equal(cached.sequences[:, 1:], torch.stack(full, 1).argmax(-1))
    for a, b, c in zip(cached.logits, plain.logits, full, strict=True):
        assert (a - b).abs().max() <= 1e-5 and (a - c).abs().max() <= 1e-5


@pytest.mark.parametrize("method", ["prefix", "mam"])
@pytest.mark.parametrize("model", ["tiny_bert", "tiny_bart"])
def test_folding_the_mlp_keeps_outputs_and_leaves_the_effective_count(method: str, model: str) -> None:
    net, applier, spec = build(method, model)
    ids = tokens(6, 7)[None]
    with torch.no_grad():
        before = net(input_ids=ids).logits
    planned = applier.planned_effective_parameters(net)
    effective = applier.effective_parameters(net)
    records = applier.on_train_end(net)
    assert records["reparameterization_mlp"] > 0 and records["matrices"]
    assert not hasattr(net, "prefix_encoder")
    assert all(isinstance(s, PrefixSite) for s in prefix_sites(net).values())
    with torch.no_grad():
        after = net(input_ids=ids).logits
    assert (before - after).abs().max() <= 1e-6
    counts = count_parameters(net, spec)
    assert counts["adapter"] == planned == applier.planned_effective_parameters(net)
    assert counts["trainable"] == effective == applier.effective_parameters(net)


def meta_counts(tmp_path, method: str, model: str, *extra: str) -> dict:
    from support import compose, tiny_overrides

    from peftbench.budget import count_on_meta
    from peftbench.config import validate

    run = validate(compose(tiny_overrides(tmp_path, f"method={method}", f"model={model}", "budget=none", *extra)))
    return count_on_meta(run)


def test_counts_follow_the_formulas(tmp_path) -> None:
    h, layers = 768, 12  # DeBERTaV3-base on the meta device
    counts = meta_counts(tmp_path, "ptuning_v2", "deberta_v3_base")
    assert counts["adapter"] == counts["planned_effective"] == 2 * 16 * h * layers == 294_912
    counts = meta_counts(tmp_path, "prefix", "deberta_v3_base")
    mlp = 16 * h + (h * 512 + 512) + (512 * 2 * h * layers + 2 * h * layers)
    assert counts["adapter"] == mlp and counts["planned_effective"] == 294_912
    counts = meta_counts(tmp_path, "mam", "deberta_v3_base")
    assert counts["planned_effective"] == 294_912 + layers * (2 * h * 16 + 16 + h)
    d, enc, dec = 32, 2, 2  # tiny BART: sites = L_enc + 2 L_dec
    counts = meta_counts(tmp_path, "ptuning_v2", "tiny_bart", "method.num_virtual_tokens=5")
    assert counts["adapter"] == 2 * 5 * d * (enc + 2 * dec)


def test_mam_adapter_starts_at_zero_and_reads_the_ffn_input() -> None:
    cfg = load_model_config("tiny_bert")
    spec = model_spec(cfg, "classification")
    torch.manual_seed(0)
    net = build_model(cfg, 2)
    method = get("mam").method(get("mam").config(), spec)
    method.apply(net)
    outputs = [m for m in net.modules() if isinstance(m, FFNOutput)]
    assert len(outputs) == spec.dims.encoder_layers
    x = torch.randn(3, 32)
    assert all(torch.equal(m.adapter(x), torch.zeros(3, 32)) for m in outputs)
    seen = {}
    hook = outputs[0].adapter.register_forward_hook(lambda mod, inp, out: seen.update(x=inp[0]))
    captured = {}
    intermediate = net.bert.encoder.layer[0].intermediate
    intermediate.register_forward_hook(lambda mod, inp, out: captured.update(x=inp[0]))
    net(input_ids=tokens(6, 8)[None])
    hook.remove()
    assert torch.equal(seen["x"], captured["x"])  # the adapter reads the FFN input


def test_method_lr_gives_the_prefix_its_own_group() -> None:
    net, applier, spec = build("ptuning_v2", "tiny_bert", lr=5e-3)
    groups = applier.param_groups(net, 0.01)
    own = [g for g in groups if g.get("lr") == 5e-3]
    assert sum(p.numel() for g in own for p in g["params"]) == 2 * 16 * 32 * 2
    assert sum(p.numel() for g in groups for p in g["params"]) == count_parameters(net, spec)["trainable"]


def test_deberta_prefix_keys_get_content_scores_only() -> None:
    """Two prefix keys' attention ratio is exp(q·(k0 − k1) / sqrt(d · scale_factor)): no relative-position bias
    (which would depend on their positions); the real keys keep DeBERTa's c2p/p2c bias."""
    net, _, _ = build("ptuning_v2", "tiny_deberta", num_virtual_tokens=2)
    attention = net.deberta.encoder.layer[1].attention.self
    captured = {}
    attention.register_forward_pre_hook(lambda mod, args: captured.update(hidden=args[0]))
    with torch.no_grad():
        out = net(input_ids=tokens(6, 9)[None], output_attentions=True)
        probs = out.attentions[1]  # (1, H, n, l + n)
        heads = attention.num_attention_heads
        query = attention.transpose_for_scores(attention.query_proj(captured["hidden"]), heads)  # (H, n, d)
        keys = attention.prefix.kv[0].view(2, heads, -1).transpose(0, 1)  # (H, l, d)
        scale = (query.shape[-1] * 3) ** 0.5  # c2p and p2c: scale factor 3
        expected = torch.einsum("hnd,hd->hn", query, keys[:, 0] - keys[:, 1]) / scale
    assert probs.shape[-1] == 2 + 6
    assert torch.allclose(torch.log(probs[0, :, :, 0] / probs[0, :, :, 1]), expected, atol=1e-5)
