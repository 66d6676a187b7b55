"""Calibration for INT8 (Q/DQ) graphs from real hidden states (filled in by the precision issue, #6)."""
