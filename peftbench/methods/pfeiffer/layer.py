"""The Pfeiffer adapter's module is Houlsby's bottleneck (math only, shared): out = z + U f(D z), with z the
FFN's output projection, f = ReLU, 2hd + d + h parameters. See ``peftbench/methods/houlsby/layer.py``."""

from peftbench.methods.houlsby.layer import Bottleneck, SequentialAdapter, parameter_count

__all__ = ["Bottleneck", "SequentialAdapter", "parameter_count"]
