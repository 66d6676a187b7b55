"""The pahs runtime: drives the bidirectional PAHS loop over exported graphs on real video files.

Layer 2 (docs/ARCHITECTURE.md, "Layers"): it imports only :mod:`pahs_export`; the commands that run it
(`pahs-run`, `pahs-bench`) are in :mod:`pahs.cli`.
"""
