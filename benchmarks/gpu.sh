#!/usr/bin/env bash
# The GPU part of the benchmark suite in one call: the float32 and bfloat16 GEMM peaks of
# this GPU, then every training workload for jaxlab (float32, and bf16 for the CNN) beside
# the Flax-examples loop and PyTorch, all on the GPU, with MFU against the measured peaks.
# PyTorch runs only where it sees the GPU itself (torch.cuda.is_available()), so that no
# ratio compares jaxlab on the GPU with PyTorch on the CPU.
#
#   bash benchmarks/gpu.sh [--repeats=3]      # writes benchmarks/gpu_results.json
#   python -m benchmarks.report benchmarks/gpu_results.json > benchmarks/RESULTS_GPU.md
set -euo pipefail
cd "$(dirname "$0")/.."
python -c 'import jax; assert jax.default_backend() == "gpu", "no GPU visible to JAX: pip install -e \".[cuda12]\""'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
peers=jaxlab,flax_loop
if python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  peers="${peers},torch"
else
  echo "gpu.sh: PyTorch is missing or does not see a GPU (torch.cuda.is_available() is false):" \
       "the PyTorch peer is left out rather than run on the CPU. Install a CUDA build of torch" \
       "(https://pytorch.org/get-started/locally/) to include it." >&2
fi
python -m benchmarks.run --only=seed_mlp,mnist_cnn,mlp_large_batch --peers="${peers}" \
    --torch_device=cuda --out="${OUT:-benchmarks/gpu_results.json}" "$@"
