"""Training data (synthetic GOPRO-style clips, readers for real datasets) and evaluation metrics."""
