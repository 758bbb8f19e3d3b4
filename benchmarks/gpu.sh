#!/usr/bin/env bash
# The GPU part of the benchmark suite in one call: the float32 and bfloat16 GEMM peaks of
# this GPU, then every workload for jaxlab (float32 and bf16) beside the Flax-examples
# loop and PyTorch (when installed), with MFU against the measured peaks.
#
#   bash benchmarks/gpu.sh [--only=seed_mlp] [--repeats=3]     # writes benchmarks/gpu_results.json
set -euo pipefail
cd "$(dirname "$0")/.."
python -c 'import jax; assert jax.default_backend() == "gpu", "no GPU visible to JAX: pip install -e \".[cuda12]\""'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -m benchmarks.run --peers=jaxlab,flax_loop,torch --out="${OUT:-benchmarks/gpu_results.json}" "$@"
