"""Prompt tuning and P-tuning v1: padding, what trains, parameter counts, BART (classification, QA, generate),
QA label shift, position limits, the dropped P-tuning encoder."""

from __future__ import annotations

import pytest
import torch

from peftbench.methods import count_parameters, get
from peftbench.methods.prompt import PromptConfig
from peftbench.methods.ptuning import PTuningConfig
from peftbench.models import build_model, load_model_config, model_spec

L = 4
CONFIGS = {"prompt": lambda **kw: PromptConfig(num_virtual_tokens=L, **kw),
           "ptuning": lambda **kw: PTuningConfig(num_virtual_tokens=L, **kw)}
CLASSES = {"classification": "AutoModelForSequenceClassification", "extractive_qa": "AutoModelForQuestionAnswering",
           "seq2seq": "AutoModelForSeq2SeqLM"}


def applied(method: str, arch: str, family: str = "classification", **options):
    model_cfg = load_model_config(arch)
    torch.manual_seed(0)
    model = build_model(model_cfg, 2 if family == "classification" else None, model_class=CLASSES[family])
    spec = model_spec(model_cfg, family)
    instance = get(method).method(CONFIGS[method](**options), spec)
    return instance.apply(model), instance, spec


def batch(padded: bool = True) -> dict[str, torch.Tensor]:
    """Two rows ending in [SEP] (BART's <eos>); the second is padded after 5 tokens when ``padded``."""
    torch.manual_seed(1)
    ids = torch.randint(1000, 2000, (2, 9))
    ids[:, -1] = 102
    mask = torch.ones_like(ids)
    if padded:
        ids[1, 4], ids[1, 5:], mask[1, 5:] = 102, 0, 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


@pytest.mark.parametrize("method", ["prompt", "ptuning"])
@pytest.mark.parametrize("arch", ["tiny_bert", "tiny_roberta", "tiny_deberta", "tiny_bart"])
def test_padded_example_gives_the_logits_of_the_example_alone(method: str, arch: str) -> None:
    model, instance, _ = applied(method, arch)
    model.eval()
    full = batch()
    if arch == "tiny_bart":
        full.pop("token_type_ids")
    alone = {k: v[1:, :5] for k, v in full.items()}
    with torch.no_grad():
        padded_logits = model(**instance.prepare_inputs(model, full)).logits
        alone_logits = model(**instance.prepare_inputs(model, alone)).logits
    assert torch.allclose(padded_logits[1], alone_logits[0], atol=1e-6, rtol=0)


def test_prepared_batch_extends_masks_and_token_types() -> None:
    model, instance, _ = applied("prompt", "tiny_bert")
    prepared = instance.prepare_inputs(model, batch())
    assert "input_ids" not in prepared
    assert prepared["inputs_embeds"].shape == (2, 9 + L, 32)
    # the prompt sits right after the first token ([CLS]), which stays where classification heads read it
    assert prepared["attention_mask"][:, 1:1 + L].eq(1).all() and prepared["attention_mask"][1].sum() == 5 + L
    assert prepared["token_type_ids"].shape == (2, 9 + L) and prepared["token_type_ids"][:, 1:1 + L].eq(0).all()
    embed = model.get_input_embeddings()
    tokens = embed(batch()["input_ids"][0])
    assert torch.equal(prepared["inputs_embeds"][0, 1:1 + L], model.soft_prompt.prompt)
    assert torch.equal(prepared["inputs_embeds"][0, :1], tokens[:1])
    assert torch.equal(prepared["inputs_embeds"][0, 1 + L:], tokens[1:])


@pytest.mark.parametrize("method", ["prompt", "ptuning"])
def test_virtual_tokens_train_and_backbone_stays_frozen(method: str) -> None:
    model, instance, spec = applied(method, "tiny_roberta")
    module = model.get_submodule(instance.module_name)
    for name, parameter in model.named_parameters():
        assert parameter.requires_grad == (name.startswith(instance.module_name) or spec.is_head(name)), name
    data = {**batch(), "labels": torch.tensor([0, 1])}
    model(**instance.prepare_inputs(model, data)).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)
    groups = instance.param_groups(model, 0.01)
    prompt_ids = {id(p) for p in module.parameters()}
    assert all(g["lr"] == 3e-2 for g in groups if any(id(p) in prompt_ids for p in g["params"]))
    assert all("lr" not in g for g in groups if not any(id(p) in prompt_ids for p in g["params"]))
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())


def test_parameter_counts_prompt_keeps_l_times_h() -> None:
    model, instance, spec = applied("prompt", "tiny_bert")
    counts = count_parameters(model, spec)
    assert counts["adapter"] == L * 32 and counts["other"] == 0
    assert instance.effective_parameters(model) == L * 32 + counts["head"]
    assert instance.virtual_tokens() == L


@pytest.mark.parametrize("encoder", ["lstm", "mlp"])
def test_parameter_counts_ptuning_trains_the_encoder_keeps_l_times_h(encoder: str) -> None:
    model, instance, spec = applied("ptuning", "tiny_bert", encoder=encoder)
    h = 32
    lstm = 2 * (4 * 16 * (h + 16) + 8 * 16) + 2 * (4 * 16 * (32 + 16) + 8 * 16)  # two bidirectional layers
    mlp = (h * h + h) * 2
    expected = L * h + mlp + (lstm if encoder == "lstm" else 0)
    counts = count_parameters(model, spec)
    assert counts["adapter"] == expected and counts["other"] == 0
    assert instance.planned_effective_parameters(model) == L * h
    assert instance.effective_parameters(model) == L * h + counts["head"]
    # dropping the encoder keeps the predictions and leaves l·h
    model.eval()
    with torch.no_grad():
        before = model(**instance.prepare_inputs(model, batch())).logits
        records = instance.on_train_end(model)
        after = model(**instance.prepare_inputs(model, batch())).logits
    assert torch.equal(before, after)
    assert count_parameters(model, spec)["adapter"] == L * h == records["kept_parameters"]
    assert records["encoder_parameters"] == expected and instance.effective_parameters(model) == L * h + counts["head"]


def test_bart_seq2seq_trains_and_generates_with_the_prompt() -> None:
    model, instance, _ = applied("prompt", "tiny_bart", "seq2seq")
    data = batch()
    data.pop("token_type_ids")
    labels = torch.randint(1000, 2000, (2, 5))
    prepared = instance.prepare_inputs(model, {**data, "labels": labels})
    loss = model(**prepared).loss
    loss.backward()
    assert torch.isfinite(loss) and model.soft_prompt.prompt.grad.abs().sum() > 0
    assert prepared["encoder_outputs"].last_hidden_state.shape[1] == 9 + L
    model.eval()
    with torch.no_grad():
        for beams in (1, 2):  # a fresh batch per call: generate expands the given encoder_outputs in place
            out = model.generate(**instance.prepare_inputs(model, data), max_new_tokens=6, num_beams=beams,
                                 do_sample=False)
            assert out.shape[0] == 2 and out.shape[1] > 1
        # generation reads the prompted encoder: its raw logits are those of a forward pass on the prepared batch
        def generated(scale: float):
            model.soft_prompt.prompt.mul_(scale)
            source = instance.prepare_inputs(model, data)
            out = model.generate(**source, max_new_tokens=3, min_new_tokens=3, do_sample=False, output_logits=True,
                                 return_dict_in_generate=True)
            forward = model(**source, decoder_input_ids=out.sequences[:, :-1]).logits
            return torch.stack(out.logits, dim=1), forward

        logits, forward = generated(1.0)
        assert torch.allclose(logits, forward, atol=1e-5)
        assert not torch.allclose(generated(5.0)[0], logits, atol=1e-4)  # the prompt matters
    assert instance.virtual_tokens() == 0


@pytest.mark.parametrize("arch", ["tiny_bert", "tiny_bart"])
def test_qa_labels_follow_the_shift(arch: str) -> None:
    model, instance, _ = applied("prompt", arch, "extractive_qa")
    data = batch()
    if arch == "tiny_bart":
        data.pop("token_type_ids")
    data.update(start_positions=torch.tensor([2, 0]), end_positions=torch.tensor([3, 0]))
    prepared = instance.prepare_inputs(model, data)
    out = model(**prepared)
    shift = instance.virtual_tokens()
    assert shift == (0 if arch == "tiny_bart" else L)
    assert out.start_logits.shape[1] == 9 + shift
    # the prompt goes after the first token: a span shifts by l, the [CLS] null answer (position 0) stays
    assert prepared["start_positions"].tolist() == [2 + shift, 0]
    assert instance.virtual_token_position() == (0 if arch == "tiny_bart" else 1)
    out.loss.backward()
    assert model.soft_prompt.prompt.grad.abs().sum() > 0


def test_absolute_positions_leave_room_for_the_prompt() -> None:
    model, instance, _ = applied("prompt", "tiny_roberta")
    limit = model.config.max_position_embeddings - model.config.pad_token_id - 1
    ids = torch.randint(1000, 2000, (1, limit - L + 1))
    with pytest.raises(ValueError, match="exceed roberta's .* positions; lower task.max_length"):
        instance.prepare_inputs(model, {"input_ids": ids})
    instance.prepare_inputs(model, {"input_ids": ids[:, 1:]})  # exactly full: fine
    model_cfg = load_model_config("tiny_bert")
    fresh = build_model(model_cfg, 2)
    too_long = get("prompt").method(PromptConfig(num_virtual_tokens=fresh.config.max_position_embeddings),
                                    model_spec(model_cfg))
    with pytest.raises(ValueError, match="leaves no room"):
        too_long.apply(fresh)


def test_prompt_init_modes() -> None:
    model, _, _ = applied("prompt", "tiny_bert", init="ids", init_token_ids=[1996, 1997])
    embed = model.get_input_embeddings()
    assert torch.equal(model.soft_prompt.prompt.detach(), embed(torch.tensor([1996, 1997, 1996, 1997])))
    model, _, _ = applied("prompt", "tiny_bert", init="random")
    assert model.soft_prompt.prompt.abs().max() <= 0.5
    with pytest.raises(ValueError, match="init_token_ids"):
        PromptConfig(init="ids")
    with pytest.raises(ValueError, match="encoder"):
        PTuningConfig(encoder="gru")
