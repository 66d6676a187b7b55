"""Backends: one small interface the bidirectional loop knows, one class per inference library.

A backend runs the step graphs of the graph contract (:mod:`pahs_export.contract`: forward/backward/fuse,
or step for the online model) on torch tensors that live on ``backend.device``. The loop never asks which
library is behind it.
Heavy libraries are imported only when their backend is opened.
"""

from __future__ import annotations

from .base import Backend, BackendWrapper, StepOutputs

__all__ = ["Backend", "BackendWrapper", "StepOutputs"]
