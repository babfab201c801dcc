"""BitFit (Ben Zaken et al., ACL 2022): train only the bias terms (plus the task head)."""

from peftbench.methods import register
from peftbench.methods.bitfit.config import BitFitConfig

register("bitfit", config=BitFitConfig, method="peftbench.methods.bitfit.method:BitFitMethod")
