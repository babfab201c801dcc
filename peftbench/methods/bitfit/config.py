from dataclasses import dataclass


@dataclass
class BitFitConfig:
    """No knobs: every ``*.bias`` of the backbone is trained, nothing else but the head."""
