"""PyTorch peer: the idiomatic eager loop, optionally through torch.compile.

Tensors stay in memory (on the GPU with --device=cuda); each epoch draws
`torch.randperm` and slices batches by index, dropping the incomplete last
one, as every peer of the suite does. Images arrive NHWC and are turned NCHW
once, inside the timed fit (this peer's placing of the data). Kernels are
turned from (in, out) / HWIO into PyTorch's (out, in) / OIHW, and the CNN's
dense1 rows from (h, w, c) into (c, h, w) flatten order, so the function
computed is the one INIT.npz describes. The larger workloads (resnet18_cifar, lm_small)
build their models in benchmarks/peers/torch_models.py, then load INIT.npz (jaxlab's
parameter paths, mapped by `resnet_weights` and `lm_weights`);
lm_small trains AdamW as nanoGPT does (decay on the 2-D weights, the global gradient
norm clipped) on next-byte targets, the masked ones set to `ignore_index`.

    python -m benchmarks.peers.torch_peer --workload=seed_mlp \
        --data=DATA.npz --init=INIT.npz --out=RESULT.json [--compile] [--device=cuda]
"""

import time

_PROCESS_START = time.perf_counter()

import contextlib  # pylint: disable=g-import-not-at-top

import numpy as np  # pylint: disable=g-import-not-at-top
import torch
from torch import nn

from benchmarks.peers import common
from benchmarks.peers import torch_models

_IMPORT_SECONDS = time.perf_counter() - _PROCESS_START
EVAL_BATCH = 1000
IGNORE = -100  # cross_entropy's ignore_index: a next-token target that does not count


def make_model(workload):
  kind = workload.model
  if kind not in ("mlp", "cnn"):
    return torch_models.make(workload)
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


def resnet_weights(model, init):
  """INIT.npz's resnet18 arrays (jaxlab's paths, HWIO) as torchvision's names (OIHW)."""
  names = {"stem_norm": "bn1", "stem": "conv1", "norm1": "bn1", "norm2": "bn2",
           "shortcut/conv": "downsample.0", "shortcut/norm": "downsample.1", "head": "fc",
           "scale": "weight"}
  state = {}
  for name, value in init.items():
    torch_name = name
    if name.startswith("blocks/"):
      index = int(name.split("/")[1])
      torch_name = f"layer{index // 2 + 1}/{index % 2}/" + name.split("/", 2)[2]
    for old, new in names.items():
      torch_name = torch_name.replace(old, new)
    if value.ndim == 4:
      value = value.transpose(3, 2, 0, 1)  # HWIO -> OIHW.
    elif value.ndim == 2:
      value = value.T
    state[torch_name.replace("kernel", "weight").replace("/", ".")] = torch.from_numpy(
        np.ascontiguousarray(value))
  missing = set(dict(model.named_parameters())) ^ set(state)
  if missing:
    raise ValueError(f"INIT.npz and the torch ResNet disagree on {sorted(missing)}")
  return [state[name] for name, _ in model.named_parameters()]


def lm_weights(model, init):
  """INIT.npz's transformer_lm arrays (jaxlab's stacked paths) as torch_models.GPT's
  parameters: per layer, the query/key/value kernels fused into qkv, kernels as (out, in)."""
  def flat_t(value):  # (in..., out...) of one layer -> nn.Linear's (out, in)
    return value.T

  embed_dim = init["embed/embedding"].shape[1]
  state = {"embed.weight": init["embed/embedding"], "norm.weight": init["final_norm/scale"],
           "head.weight": flat_t(init["head/kernel"])}
  for layer in range(init["blocks/attention_norm/scale"].shape[0]):
    def get(name, layer=layer):
      return init[f"blocks/{name}"][layer]
    prefix = f"blocks.{layer}."
    state[prefix + "attn_norm.weight"] = get("attention_norm/scale")
    state[prefix + "attn.qkv.weight"] = np.concatenate(
        [flat_t(get(f"attention/{name}/kernel").reshape(embed_dim, -1))
         for name in ("query", "key", "value")])
    state[prefix + "attn.proj.weight"] = flat_t(get("attention/out/kernel").reshape(-1, embed_dim))
    state[prefix + "mlp_norm.weight"] = get("mlp_norm/scale")
    for name in ("gate", "up", "down"):
      state[prefix + f"mlp.{name}.weight"] = flat_t(get(f"mlp/{name}/kernel"))
  names = [name for name, _ in model.named_parameters()]
  if set(names) != set(state):
    raise ValueError(f"INIT.npz and the torch GPT disagree on {sorted(set(names) ^ set(state))}")
  return [torch.from_numpy(np.ascontiguousarray(state[name])) for name in names]


def load_weights(model, init, kind):
  params = list(model.parameters())
  if kind == "resnet18":
    values = resnet_weights(model, init)
  elif kind == "transformer_lm":
    values = lm_weights(model, init)
  else:
    values = torch_weights(init, kind)
  with torch.no_grad():
    for param, value in zip(params, values, strict=True):
      if param.shape != value.shape:
        raise ValueError(f"Shape mismatch {tuple(param.shape)} vs {tuple(value.shape)}")
      param.copy_(value)


def make_optimizer(workload, model):
  params = model.parameters()
  if workload.optimizer == "adamw":  # nanoGPT's configure_optimizers: decay 2-D weights
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": workload.weight_decay},
                              {"params": rest, "weight_decay": 0.0}],
                             lr=workload.learning_rate, betas=(common.ADAM_B1, common.ADAMW_B2))
  if workload.optimizer == "adam":
    return torch.optim.Adam(params, lr=workload.learning_rate,
                            betas=(common.ADAM_B1, common.ADAM_B2),
                            eps=common.ADAM_EPS)
  return torch.optim.SGD(params, lr=workload.learning_rate,
                         momentum=common.SGD_MOMENTUM, weight_decay=workload.weight_decay)


def to_tensors(data, split, device):
  """(inputs, targets): NHWC float32 images -> NCHW with int64 labels (what
  cross_entropy wants); or token rows with their next-token targets, IGNORE where the
  next token is padding or another document (jaxlab's language_model.target_mask)."""
  if f"tokens_{split}" in data:
    tokens = torch.from_numpy(data[f"tokens_{split}"]).long()
    segments = torch.from_numpy(data[f"segment_ids_{split}"])
    counts = (segments[:, 1:] == segments[:, :-1]) & (segments[:, 1:] > 0)
    targets = torch.where(counts, tokens[:, 1:], torch.full_like(tokens[:, 1:], IGNORE))
    return tokens.to(device), targets.to(device)
  images = torch.from_numpy(data[f"x_{split}"]).permute(0, 3, 1, 2).contiguous()
  labels = torch.from_numpy(data[f"y_{split}"]).long()
  return images.to(device), labels.to(device)


def loss_fn(logits, targets, reduction="mean"):
  if logits.dim() == 3:  # B x L x V next-token logits; the last position has no target
    return nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten(),
                                       ignore_index=IGNORE, reduction=reduction)
  return nn.functional.cross_entropy(logits, targets, reduction=reduction)


def head(data, split, count):
  """The first `count` examples of a split, as `data` holds them."""
  return {key: value[:count] for key, value in data.items() if key.endswith(f"_{split}")}


def images_in(data, split):
  return data[f"tokens_{split}"] if f"tokens_{split}" in data else data[f"x_{split}"]


def synchronize(device):
  if device.type == "cuda":
    torch.cuda.synchronize(device)


@torch.no_grad()
def evaluate(model, images, labels):
  """Mean loss and accuracy per target (per image; per counted next token)."""
  model.eval()
  loss_sum, correct, count = 0.0, 0, 0
  for start in range(0, len(images), EVAL_BATCH):
    logits = model(images[start:start + EVAL_BATCH])
    batch_labels = labels[start:start + EVAL_BATCH]
    loss_sum += loss_fn(logits, batch_labels, reduction="sum").item()
    if logits.dim() == 3:
      logits = logits[:, :-1]
    counted = batch_labels != IGNORE
    correct += ((logits.argmax(-1) == batch_labels) & counted).sum().item()
    count += counted.sum().item()
  return loss_sum / count, correct / count


def workload_of(args):
  return common.get_workload(args.workload)


def train_epoch(model, optimizer, images, labels, batch_size, clip_norm=0.0):
  model.train()
  running_loss = 0.0
  steps = common.steps_per_epoch(len(images), batch_size)
  perm = torch.randperm(len(images), device=images.device)
  for step in range(steps):
    idx = perm[step * batch_size:(step + 1) * batch_size]
    optimizer.zero_grad()
    loss = loss_fn(model(images[idx]), labels[idx])
    loss.backward()
    if clip_norm:
      nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()
    running_loss += loss.item()
  return running_loss / steps


def fit(model, optimizer, data, args, device):
  """Places the training data, then trains; clock readings for timing_fields."""
  fit_start = time.perf_counter()
  images, labels = to_tensors(data, "train", device)
  epoch_ends, loss = [], None
  clip_norm = common.GRAD_CLIP_NORM if workload_of(args).optimizer == "adamw" else 0.0
  for _ in range(args.epochs):
    loss = train_epoch(model, optimizer, images, labels, args.batch_size, clip_norm)
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
  parser.add_argument("--autocast_bf16", action="store_true",
                      help="Train under torch.autocast(dtype=torch.bfloat16), as nanoGPT does "
                      "on GPUs; the weights stay float32.")


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
  model = make_model(workload)
  if workload.shares_init:
    load_weights(model, init, workload.model)
  model.to(device)
  optimizer = make_optimizer(workload, model)
  images, labels = to_tensors(head(data, "train", workload.initial_examples), "train", device)
  initial_loss, _ = evaluate(model, images, labels)
  initial_logits = None  # the LMs' are per position: their initial loss is compared
  if workload.shares_init and workload.model != "transformer_lm":
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
  if args.autocast_bf16:
    fields["compute_dtype"] = "bfloat16"
  steps_per_epoch = common.steps_per_epoch(len(images_in(data, "train")), args.batch_size)
  fit_start, epoch_ends = 0.0, []
  if args.epochs > 0:
    try:
      precision = (torch.autocast(device.type, dtype=torch.bfloat16) if args.autocast_bf16
                   else contextlib.nullcontext())
      with precision:
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
  if epoch_ends:
    fields.update(common.phase_clock(_PROCESS_START + _IMPORT_SECONDS, fit_start,
                                     epoch_ends[-1]))
  test_loss, test_accuracy = evaluate(model, *to_tensors(data, "test", device))
  fields.update(test_loss=test_loss, test_accuracy=test_accuracy)
  common.write_result(args.out, fields)


if __name__ == "__main__":
  main()
