"""Text data sets: filled in below."""
LOADERS = {}
