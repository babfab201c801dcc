"""MAM adapter (He et al., ICLR 2022): prefix tuning on attention + scaled parallel adapter on the FFN."""

from peftbench.methods import register
from peftbench.methods.mam.config import MAMConfig
from peftbench.methods.mam.method import MAMMethod

__all__ = ["MAMConfig", "MAMMethod"]

register("mam", config=MAMConfig, method=MAMMethod)
