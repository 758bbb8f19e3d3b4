"""Performance: model FLOPs, device peaks and prices, MFU, memory fit, the dry-run report."""
