"""The protocol stages, re-exported for protocol/ and the layers above it.

`Stage` (each stage's Postfix phrases) lives in the package's bottom layer, mailcarrier/stages.py,
so that errors.py can type `TransportError.stage` with it; the time limit of each stage is the
transport's business (transport/options.py). Import it from either place: it is one class.
"""

from __future__ import annotations

from mailcarrier.stages import Stage, StageInfo

__all__ = ["Stage", "StageInfo"]
