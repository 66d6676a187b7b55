"""Calibration for INT8 (Q/DQ) graphs from real hidden states: clips of training's synthetic content, run through
the runtime's loop over the FP32 model (:mod:`calibration.data`).

Layer 3 (docs/ARCHITECTURE.md, "Layers"): it imports :mod:`pahs_export`, :mod:`runtime` and :mod:`training`; the
INT8 export reaches it only as a parameter (``pahs_export.precision.CalibrationSource``).
"""
