"""MAM adapter (He et al., ICLR 2022): prefix tuning on attention + scaled parallel adapter on the FFN."""

from peftbench.methods import register
from peftbench.methods.mam.config import MAMConfig

__all__ = ["MAMConfig"]

register("mam", config=MAMConfig, method="peftbench.methods.mam.method:MAMMethod",
         knob="bottleneck", knob_kind="bottleneck", budget_binds="effective")
