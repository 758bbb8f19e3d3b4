"""Orbax checkpoints of a workdir: the manager, s3/az staging, and content digests."""
