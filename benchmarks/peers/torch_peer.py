"""PyTorch peer: the idiomatic eager loop, optionally through torch.compile.

Tensors stay in memory; each epoch draws `torch.randperm` and slices batches
by index, including the incomplete last one. Images arrive NHWC and are
turned NCHW once; kernels are turned from (in, out) / HWIO into PyTorch's
(out, in) / OIHW, and the CNN's dense1 rows from (h, w, c) into (c, h, w)
flatten order, so the function computed is the one INIT.npz describes.

    python -m benchmarks.peers.torch_peer --workload=seed_mlp \
        --data=DATA.npz --init=INIT.npz --out=RESULT.json [--compile]
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


def to_tensors(data):
  """NHWC float32 -> NCHW, int labels -> int64 (what cross_entropy wants)."""
  return {
      "x_train": torch.from_numpy(data["x_train"]).permute(0, 3, 1, 2).contiguous(),
      "y_train": torch.from_numpy(data["y_train"]).long(),
      "x_test": torch.from_numpy(data["x_test"]).permute(0, 3, 1, 2).contiguous(),
      "y_test": torch.from_numpy(data["y_test"]).long(),
  }


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


def train_epoch(model, optimizer, images, labels, batch_size, on_step):
  model.train()
  running_loss, steps = 0.0, 0
  perm = torch.randperm(len(images))
  for start in range(0, len(images), batch_size):
    idx = perm[start:start + batch_size]
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(images[idx]), labels[idx])
    loss.backward()
    optimizer.step()
    running_loss += loss.item()
    steps += 1
    on_step()
  return running_loss / steps, steps


def fit(model, optimizer, tensors, args):
  fit_start = time.perf_counter()
  first_step_end = []
  record_first = lambda: first_step_end or first_step_end.append(time.perf_counter())
  epoch_seconds, steps, loss = [], 0, None
  for _ in range(args.epochs):
    epoch_start = time.perf_counter()
    loss, epoch_steps = train_epoch(model, optimizer, tensors["x_train"],
                                    tensors["y_train"], args.batch_size,
                                    record_first)
    epoch_seconds.append(time.perf_counter() - epoch_start)
    steps += epoch_steps
  return {"fit_seconds": time.perf_counter() - fit_start,
          "first_step_seconds": first_step_end[0] - fit_start,
          "epoch_seconds": epoch_seconds, "steps": steps,
          "final_train_loss": loss}


def add_flags(parser):
  parser.add_argument("--compile", action="store_true",
                      help="Wrap the model in torch.compile (inductor).")
  parser.add_argument("--num_threads", type=int, default=2,
                      help="torch.set_num_threads; 2 = this machine's cores.")


def main(argv=None):
  args = common.parse_args(argv, extra_flags=[add_flags])
  torch.set_num_threads(args.num_threads)
  torch.manual_seed(args.seed)
  workload = common.get_workload(args.workload)
  data = common.load_npz(args.data)
  init = common.load_npz(args.init)
  common.check_init(init, workload)
  tensors = to_tensors(data)
  model = make_model(workload.model)
  load_weights(model, init, workload.model)
  optimizer = make_optimizer(workload, model.parameters())
  n = common.INITIAL_LOSS_EXAMPLES
  initial_loss, _ = evaluate(model, tensors["x_train"][:n], tensors["y_train"][:n])
  with torch.no_grad():
    initial_logits = model(
        tensors["x_train"][:common.INITIAL_LOGITS_EXAMPLES]).tolist()
  fields = {"framework": "torch",
            "variant": "compile" if args.compile else "eager",
            "workload": workload.name, "batch_size": args.batch_size,
            "epochs": args.epochs, "initial_loss": initial_loss,
            "initial_logits": initial_logits,
            "import_seconds": _IMPORT_SECONDS,
            "versions": {"torch": torch.__version__},
            "num_threads": torch.get_num_threads()}
  if args.compile:
    model = torch.compile(model)
    # Inductor keeps compiled kernels on disk, so only a first run pays the
    # full compile; TORCHINDUCTOR_FORCE_DISABLE_CACHES=1 measures it every time.
    fields["compile_caches_disabled"] = bool(
        torch.compiler.config.force_disable_caches)
  if args.epochs > 0:
    try:
      fit_info = fit(model, optimizer, tensors, args)
    except Exception as e:  # pylint: disable=broad-except
      if not args.compile:
        raise
      # torch.compile needs a working C++ toolchain; without one, say why.
      fields.update(status="skipped", skip_reason=f"torch.compile failed: {e!r}"[:2000])
      common.write_result(args.out, fields)
      return
    fields.update(common.timing_fields(
        fit_info["fit_seconds"], fit_info["steps"],
        args.epochs * len(tensors["x_train"]), fit_info["first_step_seconds"]))
    fields.update(first_epoch_seconds=fit_info["epoch_seconds"][0],
                  epoch_seconds=fit_info["epoch_seconds"],
                  final_train_loss=fit_info["final_train_loss"])
    if args.compile:
      fields["compile_seconds"] = fit_info["first_step_seconds"]
  else:
    fields.update(common.timing_fields(0.0, 0, 0, None))
  test_loss, test_accuracy = evaluate(model, tensors["x_test"], tensors["y_test"])
  fields.update(test_loss=test_loss, test_accuracy=test_accuracy)
  common.write_result(args.out, fields)


if __name__ == "__main__":
  main()
