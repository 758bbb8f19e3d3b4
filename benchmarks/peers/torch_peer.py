"""PyTorch peer: the idiomatic eager loop, optionally through torch.compile.

Tensors stay in memory (on the GPU with --device=cuda); each epoch draws
`torch.randperm` and slices batches by index, dropping the incomplete last
one, as every peer of the suite does. Images arrive NHWC and are turned NCHW
once, inside the timed fit (this peer's placing of the data). Kernels are
turned from (in, out) / HWIO into PyTorch's (out, in) / OIHW, and the CNN's
dense1 rows from (h, w, c) into (c, h, w) flatten order, so the function
computed is the one INIT.npz describes.

    python -m benchmarks.peers.torch_peer --workload=seed_mlp \
        --data=DATA.npz --init=INIT.npz --out=RESULT.json [--compile] [--device=cuda]
"""

import time

_PROCESS_START = time.perf_counter()

import numpy as np  # pylint: disable=g-import-not-at-top
import torch
from torch import nn

from benchmarks.peers import common

_IMPORT_SECONDS = time.perf_counter() - _PROCESS_START
EVAL_BATCH = 1000


def make_model(kind):
  if kind == "mlp":
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(),
                         nn.Linear(128, 10))
  return nn.Sequential(
      nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2, 2),
      nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2, 2),
      nn.Flatten(), nn.Linear(7 * 7 * 64, 256), nn.ReLU(), nn.Linear(256, 10))


def torch_weights(init, kind):
  """INIT.npz arrays in the order and layout of make_model's parameters."""
  names = [name for name, _ in common.PARAM_SHAPES[kind]]
  out = []
  for name in names:
    value = init[name]
    if name.startswith("conv") and name.endswith("kernel"):
      value = value.transpose(3, 2, 0, 1)  # HWIO -> OIHW.
    elif kind == "cnn" and name == "dense1/kernel":
      value = value.reshape(7, 7, 64, -1).transpose(2, 0, 1, 3).reshape(
          7 * 7 * 64, -1).T  # Rows (h, w, c) -> (c, h, w); then (out, in).
    elif name.endswith("kernel"):
      value = value.T
    out.append(torch.from_numpy(np.ascontiguousarray(value)))
  return out


def load_weights(model, init, kind):
  params = list(model.parameters())
  with torch.no_grad():
    for param, value in zip(params, torch_weights(init, kind), strict=True):
      if param.shape != value.shape:
        raise ValueError(f"Shape mismatch {tuple(param.shape)} vs {tuple(value.shape)}")
      param.copy_(value)


def make_optimizer(workload, params):
  if workload.optimizer == "adam":
    return torch.optim.Adam(params, lr=workload.learning_rate,
                            betas=(common.ADAM_B1, common.ADAM_B2),
                            eps=common.ADAM_EPS)
  return torch.optim.SGD(params, lr=workload.learning_rate,
                         momentum=common.SGD_MOMENTUM)


def to_tensors(data, split, device):
  """NHWC float32 -> NCHW, int labels -> int64 (what cross_entropy wants)."""
  images = torch.from_numpy(data[f"x_{split}"]).permute(0, 3, 1, 2).contiguous()
  labels = torch.from_numpy(data[f"y_{split}"]).long()
  return images.to(device), labels.to(device)


def synchronize(device):
  if device.type == "cuda":
    torch.cuda.synchronize(device)


@torch.no_grad()
def evaluate(model, images, labels):
  model.eval()
  loss_sum, correct = 0.0, 0
  for start in range(0, len(images), EVAL_BATCH):
    logits = model(images[start:start + EVAL_BATCH])
    batch_labels = labels[start:start + EVAL_BATCH]
    loss_sum += nn.functional.cross_entropy(logits, batch_labels,
                                            reduction="sum").item()
    correct += (logits.argmax(1) == batch_labels).sum().item()
  return loss_sum / len(images), correct / len(images)


def train_epoch(model, optimizer, images, labels, batch_size):
  model.train()
  running_loss = 0.0
  steps = common.steps_per_epoch(len(images), batch_size)
  perm = torch.randperm(len(images), device=images.device)
  for step in range(steps):
    idx = perm[step * batch_size:(step + 1) * batch_size]
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(images[idx]), labels[idx])
    loss.backward()
    optimizer.step()
    running_loss += loss.item()
  return running_loss / steps


def fit(model, optimizer, data, args, device):
  """Places the training data, then trains; clock readings for timing_fields."""
  fit_start = time.perf_counter()
  images, labels = to_tensors(data, "train", device)
  epoch_ends, loss = [], None
  for _ in range(args.epochs):
    loss = train_epoch(model, optimizer, images, labels, args.batch_size)
    synchronize(device)
    epoch_ends.append(time.perf_counter())
  return fit_start, epoch_ends, loss


def add_flags(parser):
  parser.add_argument("--compile", action="store_true",
                      help="Wrap the model in torch.compile (inductor).")
  parser.add_argument("--num_threads", type=int, default=0,
                      help="torch.set_num_threads; 0: PyTorch's default (the usable cores).")
  parser.add_argument("--device", default="auto",
                      help="cpu, cuda, or auto: cuda where torch.cuda.is_available().")


def main(argv=None):
  args = common.parse_args(argv, extra_flags=[add_flags])
  if args.num_threads:
    torch.set_num_threads(args.num_threads)
  torch.manual_seed(args.seed)
  device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                        if args.device == "auto" else args.device)
  workload = common.get_workload(args.workload)
  data = common.load_npz(args.data)
  init = common.load_npz(args.init)
  common.check_init(init, workload)
  model = make_model(workload.model)
  load_weights(model, init, workload.model)
  model.to(device)
  optimizer = make_optimizer(workload, model.parameters())
  n = common.INITIAL_LOSS_EXAMPLES
  images, labels = to_tensors({"x_train": data["x_train"][:n],
                               "y_train": data["y_train"][:n]}, "train", device)
  initial_loss, _ = evaluate(model, images, labels)
  with torch.no_grad():
    initial_logits = model(images[:common.INITIAL_LOGITS_EXAMPLES]).tolist()
  fields = {"framework": "torch",
            "variant": "compile" if args.compile else "eager",
            "workload": workload.name, "batch_size": args.batch_size,
            "epochs": args.epochs, "initial_loss": initial_loss,
            "initial_logits": initial_logits,
            "import_seconds": _IMPORT_SECONDS,
            "versions": {"torch": torch.__version__},
            "device": device.type,
            "num_threads": torch.get_num_threads(),
            "num_interop_threads": torch.get_num_interop_threads()}
  if args.compile:
    model = torch.compile(model)
    # Inductor keeps compiled kernels on disk, so only a first run pays the
    # full compile; TORCHINDUCTOR_FORCE_DISABLE_CACHES=1 measures it every time.
    fields["compile_caches_disabled"] = bool(
        torch.compiler.config.force_disable_caches)
  steps_per_epoch = common.steps_per_epoch(len(data["x_train"]), args.batch_size)
  fit_start, epoch_ends = 0.0, []
  if args.epochs > 0:
    try:
      fit_start, epoch_ends, loss = fit(model, optimizer, data, args, device)
    except Exception as e:  # pylint: disable=broad-except
      if not args.compile:
        raise
      # torch.compile needs a working C++ toolchain; without one, say why.
      fields.update(status="skipped", skip_reason=f"torch.compile failed: {e!r}"[:2000])
      common.write_result(args.out, fields)
      return
    fields["final_train_loss"] = loss
  fields.update(common.timing_fields(fit_start, epoch_ends, steps_per_epoch,
                                     args.batch_size))
  test_loss, test_accuracy = evaluate(model, *to_tensors(data, "test", device))
  fields.update(test_loss=test_loss, test_accuracy=test_accuracy)
  common.write_result(args.out, fields)


if __name__ == "__main__":
  main()
