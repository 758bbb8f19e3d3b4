"""The benchmark suite: `python -m benchmarks.run` (or `jaxlab bench`)."""
