"""What a workdir holds: file names, the lock, metric writers, TensorBoard events, plots."""
