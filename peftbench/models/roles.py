"""What methods need to know about a backbone, by role, without loading it (torch-free).

The rule for the task head: the head is the layers the ``AutoModelFor<family>`` class runs after the last
transformer block to produce the task's output, and it trains with every method. For classification that is the
pooling layer (dense + tanh over the first token) and the output projection, wherever Hugging Face puts them:
BERT/MiniLM ``pooler`` + ``classifier``, DeBERTa ``pooler`` + ``classifier``, RoBERTa ``classifier`` (its
``dense`` + ``out_proj``), BART ``classification_head`` (``dense`` + ``out_proj``). This is what the official
AdaLoRA and SoRA code trains (their DeBERTa pooler is new, and BERT's pretrained NSP pooler is not a sentence
representation the task can use frozen: a frozen MiniLM pooler left the classifier at 0.64-0.69 accuracy). For
extractive QA the head is ``qa_outputs``. A seq2seq LM head tied to the input embeddings is backbone, not head:
no head for summarization.

Roles are regexes that fully match qualified module names; dimensions come from the Hugging Face config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MATRIX_TYPES = ("query", "key", "value", "attention_output", "ffn_in", "ffn_out")
FAMILIES = ("classification", "extractive_qa", "seq2seq")


@dataclass(frozen=True)
class Architecture:
    """Module roles of one Hugging Face ``model_type``."""

    targets: dict[str, str]  # matrix type -> regex
    blocks: str  # transformer blocks (encoder and decoder layers)
    self_attention: str  # the self-attention modules (the ones that own query/key/value)
    cross_attention: str | None  # encoder-decoder attention in decoder blocks
    norms: str
    embeddings: str
    heads: dict[str, tuple[str, ...]]  # task family -> substrings naming the head's parameters


_BERT_TARGETS = {
    "query": r".*\.attention\.self\.query",
    "key": r".*\.attention\.self\.key",
    "value": r".*\.attention\.self\.value",
    "attention_output": r".*\.attention\.output\.dense",
    "ffn_in": r".*\.intermediate\.dense",
    "ffn_out": r".*\.layer\.\d+\.output\.dense",
}
_BERT_LIKE = dict(blocks=r".*\.layer\.\d+", self_attention=r".*\.layer\.\d+\.attention\.self", cross_attention=None,
                  norms=r".*LayerNorm", embeddings=r".*\.embeddings")

ARCHITECTURES: dict[str, Architecture] = {
    "bert": Architecture(targets=_BERT_TARGETS, **_BERT_LIKE,
                         heads={"classification": ("pooler", "classifier"), "extractive_qa": ("qa_outputs",)}),
    "roberta": Architecture(targets=_BERT_TARGETS, **_BERT_LIKE,
                            heads={"classification": ("classifier",), "extractive_qa": ("qa_outputs",)}),
    "deberta-v2": Architecture(
        targets={**_BERT_TARGETS, "query": r".*\.attention\.self\.query_proj",
                 "key": r".*\.attention\.self\.key_proj", "value": r".*\.attention\.self\.value_proj"},
        **_BERT_LIKE, heads={"classification": ("pooler", "classifier"), "extractive_qa": ("qa_outputs",)}),
    "bart": Architecture(
        targets={"query": r".*_attn\.q_proj", "key": r".*_attn\.k_proj", "value": r".*_attn\.v_proj",
                 "attention_output": r".*_attn\.out_proj", "ffn_in": r".*\.fc1", "ffn_out": r".*\.fc2"},
        blocks=r".*\.layers\.\d+", self_attention=r".*\.layers\.\d+\.self_attn",
        cross_attention=r".*\.layers\.\d+\.encoder_attn", norms=r".*layer_?norm.*", embeddings=r".*embed_\w+",
        heads={"classification": ("classification_head",), "extractive_qa": ("qa_outputs",), "seq2seq": ()}),
    # EncoderDecoderModel of two BERT copies (conf/model/minilm_seq2seq.yaml): ``encoder.encoder.layer.N`` and
    # ``decoder.bert.encoder.layer.N``; the BERT targets match encoder and decoder self-attention and FFNs (not
    # ``crossattention``, whose names lack the ``.attention.`` segment). Warm-started from a BERT checkpoint, the
    # decoder's cross-attention and LM-head transform (``cls.predictions``; its decoder matrix is tied to the
    # embeddings) are new, random-init modules: by the head rule they are the seq2seq head and always train.
    "encoder-decoder": Architecture(
        targets=_BERT_TARGETS, **{**_BERT_LIKE, "cross_attention": r".*\.layer\.\d+\.crossattention"},
        heads={"seq2seq": ("crossattention", "cls.predictions")}),
}


@dataclass(frozen=True)
class Dimensions:
    hidden: int
    heads: int
    head_size: int
    ffn: int
    encoder_layers: int
    decoder_layers: int = 0


def dimensions(config: Any) -> Dimensions:
    """Sizes read from a Hugging Face config (BERT-style or BART-style names; an encoder-decoder's halves)."""
    if config.model_type == "encoder-decoder":
        encoder, decoder = dimensions(config.encoder), dimensions(config.decoder)
        return Dimensions(hidden=encoder.hidden, heads=encoder.heads, head_size=encoder.head_size, ffn=encoder.ffn,
                          encoder_layers=encoder.encoder_layers, decoder_layers=decoder.encoder_layers)
    get = lambda *names: next(getattr(config, n) for n in names if getattr(config, n, None) is not None)  # noqa: E731
    hidden = get("hidden_size", "d_model")
    heads = get("num_attention_heads", "encoder_attention_heads")
    return Dimensions(hidden=hidden, heads=heads, head_size=hidden // heads,
                      ffn=get("intermediate_size", "encoder_ffn_dim"),
                      encoder_layers=get("num_hidden_layers", "encoder_layers"),
                      decoder_layers=getattr(config, "decoder_layers", 0) if config.model_type == "bart" else 0)


@dataclass(frozen=True)
class ModelSpec:
    """A backbone as the methods see it: matrix types, roles, head and sizes."""

    name: str
    targets: dict[str, str]  # matrix type -> regex that fully matches the module's qualified name
    head_patterns: tuple[str, ...]  # substrings naming the task head (always trainable, counted apart)
    decoder_offset: int = 0  # encoder-decoder models: decoder block i is reported as layer offset + i
    model_type: str | None = None
    dims: Dimensions | None = None
    roles: dict[str, str | None] = field(default_factory=dict)  # blocks, self_attention, cross_attention, ...

    def layer_of(self, module_name: str) -> int:
        """Block index for records and heatmaps; decoder blocks come after the encoder's."""
        index = layer_index(module_name)
        return index + self.decoder_offset if ".decoder." in f".{module_name}" else index

    def matrix_type(self, module_name: str) -> str | None:
        for matrix_type, pattern in self.targets.items():
            if re.fullmatch(pattern, module_name):
                return matrix_type
        return None

    def target_regex(self, types: tuple[str, ...] | None = None) -> str:
        chosen = [self.targets[t] for t in (types or tuple(self.targets))]
        return "|".join(f"(?:{p})" for p in chosen)

    def is_head(self, parameter_name: str) -> bool:
        return any(p in parameter_name for p in self.head_patterns)

    def modules_of(self, role: str, names: list[str]) -> list[str]:
        """The module names (from ``names``) that play ``role`` (a key of ``roles`` or a matrix type)."""
        pattern = self.targets.get(role) or self.roles.get(role)
        return [] if pattern is None else [n for n in names if re.fullmatch(pattern, n)]


def layer_index(module_name: str) -> int:
    """Transformer block index of a module name (``...layer.11.attention...`` -> 11), -1 if it has none.
    Encoder-decoder models restart at 0 in the decoder: use ``ModelSpec.layer_of`` for records."""
    match = re.search(r"\.(\d+)\.", module_name)
    return int(match.group(1)) if match else -1


def architecture(model_type: str) -> Architecture:
    if model_type not in ARCHITECTURES:
        raise ValueError(f"model_type {model_type!r} has no module roles; known: {', '.join(sorted(ARCHITECTURES))} "
                         "(add one to peftbench/models/roles.py)")
    return ARCHITECTURES[model_type]


def build_spec(name: str, config: Any, family: str, targets: dict[str, str] | None = None,
               head: list[str] | None = None) -> ModelSpec:
    """The spec of model ``name`` with HF ``config`` for a task ``family``; YAML ``targets``/``head`` override."""
    arch = architecture(config.model_type)
    if family not in arch.heads and head is None:
        raise ValueError(f"model {name} ({config.model_type}) has no {family} head; families: {sorted(arch.heads)}")
    dims = dimensions(config)
    roles = {"blocks": arch.blocks, "self_attention": arch.self_attention, "cross_attention": arch.cross_attention,
             "norms": arch.norms, "embeddings": arch.embeddings}
    return ModelSpec(name=name, targets=dict(targets or arch.targets),
                     head_patterns=tuple(arch.heads[family] if head is None else head),
                     decoder_offset=dims.encoder_layers if dims.decoder_layers else 0,
                     model_type=config.model_type, dims=dims, roles=roles)
