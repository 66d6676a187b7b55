"""The pahs runtime: drives the bidirectional PAHS loop over exported graphs on real video files."""
