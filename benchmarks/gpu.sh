#!/usr/bin/env bash
# The GPU part of the benchmark suite in one call: the float32 and bfloat16 GEMM peaks of
# this GPU, then every training workload for jaxlab (float32; bf16 for the CNN) beside
# the Flax-examples loop and PyTorch, all on the GPU, with MFU against the measured peaks:
# the MNIST workloads, resnet18_cifar, lm_small, and lm_large (lm_small scaled up to ~200M
# parameters and 1024-token rows; jaxlab in bf16 with cuDNN flash attention against
# PyTorch under bf16 autocast, the aim being >= 50% bf16 MFU on an H100/H200-class GPU).
# PyTorch runs only where it sees the GPU itself (torch.cuda.is_available()), so that no
# ratio compares jaxlab on the GPU with PyTorch on the CPU. Not yet run on a GPU.
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
# The larger workloads run jaxlab and PyTorch only (the runner drops the other peers).
python -m benchmarks.run --only=seed_mlp,mnist_cnn,mlp_large_batch,resnet18_cifar,lm_small,lm_large \
    --peers="${peers}" --torch_device=cuda --out="${OUT:-benchmarks/gpu_results.json}" "$@"
