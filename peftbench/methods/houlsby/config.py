"""Houlsby adapter settings (Houlsby et al., ICML 2019), as AdaLoRA's HAdapter baseline runs them."""

from __future__ import annotations

from dataclasses import dataclass, field

ACTIVATION_NAMES = ("swish", "gelu", "relu", "tanh")  # the keys of layer.ACTIVATIONS, named here without torch
INITS = ("normal", "kaiming")
SEQUENTIAL_SITES = ("attention_output", "ffn_out")  # sub-layer output projections an adapter can follow


def check_adapter(config, method: str, sites: tuple[str, ...]) -> None:
    """Checks shared by the bottleneck adapters (``bottleneck``, ``activation``, ``init``, ``init_std``,
    ``target_types``, ``train_layernorm``); one-line errors naming the field."""
    config.target_types = list(config.target_types)  # Hydra hands over a ListConfig
    if isinstance(config.bottleneck, bool) or not isinstance(config.bottleneck, int) or config.bottleneck < 1:
        raise ValueError(f"{method}: bottleneck must be a positive integer, got {config.bottleneck!r}")
    if config.activation not in ACTIVATION_NAMES:
        raise ValueError(f"{method}: activation must be one of {sorted(ACTIVATION_NAMES)}, got {config.activation!r}")
    if config.init not in INITS:
        raise ValueError(f"{method}: init must be one of {list(INITS)}, got {config.init!r}")
    if not config.init_std > 0:
        raise ValueError(f"{method}: init_std must be > 0, got {config.init_std}")
    unknown = [t for t in config.target_types if t not in sites]
    if unknown or not config.target_types or len(set(config.target_types)) != len(config.target_types):
        raise ValueError(f"{method}: target_types needs one or more distinct of {list(sites)}; "
                         f"got {config.target_types}")


@dataclass
class HoulsbyConfig:
    bottleneck: int = field(
        default=64, metadata={"help": "d: adapter bottleneck size (Houlsby: 8/64/256; AdaLoRA Table 7: 8/16/32)"})
    activation: str = field(
        default="swish", metadata={"help": "f: swish (AdaLoRA's HAdapter), gelu (Houlsby's code), relu, tanh"})
    init: str = field(
        default="normal", metadata={"help": "W_down init: normal (truncated N(0, init_std^2)) or kaiming"})
    init_std: float = field(default=1e-2, metadata={"help": "std of W_down for init=normal (Houlsby Sec. 3.6)"})
    target_types: list[str] = field(
        default_factory=lambda: list(SEQUENTIAL_SITES),
        metadata={"help": "projections followed by an adapter: attention_output, ffn_out (Houlsby: both)"})
    train_layernorm: bool = field(
        default=False, metadata={"help": "also train every LayerNorm (Houlsby: yes; AdaLoRA's counts: no)"})

    def __post_init__(self) -> None:
        check_adapter(self, "houlsby", SEQUENTIAL_SITES)
