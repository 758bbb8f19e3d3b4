"""What every peer shares: workloads, synthetic data, initial weights, results.

The runner calls `make_synthetic_mnist` and `make_init`, saves them with
`save_npz`, then launches each peer as

    python -m benchmarks.peers.<peer> --workload=seed_mlp --data=DATA.npz \
        --init=INIT.npz --epochs=5 --batch_size=32 --out=RESULT.json

The layout of INIT.npz is documented in benchmarks/peers/README.md.
"""

import argparse
import dataclasses
import json
import os
import platform
import resource
import sys
import time

import numpy as np

IMAGE_SHAPE = (28, 28, 1)  # NHWC without the batch axis.
NUM_CLASSES = 10
# Every peer reports its loss on x_train[:INITIAL_LOSS_EXAMPLES] before any
# update, so tests can check that all peers start from the same function.
INITIAL_LOSS_EXAMPLES = 256
# ... and the logits of x_train[:INITIAL_LOGITS_EXAMPLES], a sharper check.
INITIAL_LOGITS_EXAMPLES = 4


@dataclasses.dataclass(frozen=True)
class Workload:
  name: str
  model: str  # "mlp", "cnn", "resnet18" or "transformer_lm"
  optimizer: str  # "adam", "sgd_momentum" or "adamw"
  learning_rate: float
  batch_size: int
  epochs: int
  # The larger workloads: their own data and sizes.
  data: str = "mnist"  # "mnist", "cifar" (32x32x3 images) or "python_docs" (byte rows)
  options: tuple = ()  # (name, value) pairs: the model's sizes
  n_train: int = 0  # training examples (0: the runner's MNIST size); whole batches
  n_test: int = 0
  weight_decay: float = 0.0
  initial_examples: int = INITIAL_LOSS_EXAMPLES  # the initial loss is taken on x_train[:initial_examples]

  @property
  def shares_init(self):
    return self.model in PARAM_SHAPES or self.model == "transformer_lm"

  @property
  def param_shapes(self):
    """(name, shape) of every parameter INIT.npz holds for this workload."""
    if self.model == "transformer_lm":
      return transformer_lm_shapes(**dict(self.options))
    return PARAM_SHAPES.get(self.model, ())


WORKLOADS = {
    # Keras MNIST quickstart (without its Dropout(0.2), so every peer runs
    # the same deterministic model).
    "seed_mlp": Workload("seed_mlp", "mlp", "adam", 1e-3, 32, 5),
    # Flax examples' MNIST CNN; the examples train 10 epochs, the suite 2
    # (the steady rate is timed on the epochs after the first).
    "mnist_cnn": Workload("mnist_cnn", "cnn", "sgd_momentum", 0.1, 128, 2),
    # The quickstart model at a batch size where the framework, not Python,
    # should dominate. Same learning rate: this measures speed, not recipes.
    "mlp_large_batch": Workload("mlp_large_batch", "mlp", "adam", 1e-3, 4096, 5),
    # ResNet-18 with the CIFAR stem on CIFAR-shaped synthetic images (jaxlab's
    # synthetic cifar10: class prototypes in noise), SGD momentum as CIFAR recipes
    # train it. A step is ~0.2 TFLOP: 3 epochs of 4 steps, steady over the last 8.
    "resnet18_cifar": Workload(
        "resnet18_cifar", "resnet18", "sgd_momentum", 0.05, 128, 3, data="cifar",
        options=(("num_classes", 10),), n_train=4 * 128, n_test=256, weight_decay=5e-4),
    # A ~10M-parameter decoder (6 x 320, 5 heads of 64, SwiGLU 1280, byte vocabulary)
    # on 256-byte rows of Python's documentation; AdamW as nanoGPT sets it.
    "lm_small": Workload(
        "lm_small", "transformer_lm", "adamw", 1e-3, 16, 3, data="python_docs",
        options=(("vocab_size", 259), ("num_layers", 6), ("embed_dim", 320),
                 ("num_heads", 5), ("mlp_dim", 1280), ("seq_len", 256)),
        n_train=4 * 16, n_test=32, weight_decay=0.1, initial_examples=32),
    # lm_small scaled up for a GPU's bf16 MFU (benchmarks/gpu.sh; not in the CPU suite):
    # 12 x 1024, 16 heads of 64, SwiGLU 4096 (~200M parameters), 1024-byte rows, batch 32.
    "lm_large": Workload(
        "lm_large", "transformer_lm", "adamw", 3e-4, 32, 3, data="python_docs",
        options=(("vocab_size", 259), ("num_layers", 12), ("embed_dim", 1024),
                 ("num_heads", 16), ("mlp_dim", 4096), ("seq_len", 1024)),
        n_train=8 * 32, n_test=32, weight_decay=0.1, initial_examples=32),
}
# The larger workloads' sizes are their own (the others are MNIST-sized).
LARGE_WORKLOADS = ("resnet18_cifar", "lm_small", "lm_large")
GPU_WORKLOADS = ("lm_large",)  # run only when named (--only): hours on a CPU
ADAMW_B2, GRAD_CLIP_NORM = 0.95, 1.0  # the LMs: nanoGPT's AdamW and clipping

ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-7  # Keras defaults.
SGD_MOMENTUM = 0.9

# (name, shape) of every parameter, kernels as (in, out) / HWIO. The CNN's
# dense1 rows follow a flatten of NHWC activations, i.e. (h, w, c) order.
PARAM_SHAPES = {
    "mlp": (
        ("dense1/kernel", (784, 128)),
        ("dense1/bias", (128,)),
        ("dense2/kernel", (128, 10)),
        ("dense2/bias", (10,)),
    ),
    "cnn": (
        ("conv1/kernel", (3, 3, 1, 32)),
        ("conv1/bias", (32,)),
        ("conv2/kernel", (3, 3, 32, 64)),
        ("conv2/bias", (64,)),
        ("dense1/kernel", (7 * 7 * 64, 256)),
        ("dense1/bias", (256,)),
        ("dense2/kernel", (256, 10)),
        ("dense2/bias", (10,)),
    ),
}


def resnet18_shapes(num_classes=10, width=64):
  """jaxlab's resnet18 (CIFAR stem) parameters, named by their paths in the model."""
  shapes = [("stem/kernel", (3, 3, 3, width)), ("stem_norm/scale", (width,)),
            ("stem_norm/bias", (width,))]
  in_features = width
  for index in range(8):
    features = width * 2 ** (index // 2)
    block = f"blocks/{index}"
    shapes += [(f"{block}/conv1/kernel", (3, 3, in_features, features)),
               (f"{block}/norm1/scale", (features,)), (f"{block}/norm1/bias", (features,)),
               (f"{block}/conv2/kernel", (3, 3, features, features)),
               (f"{block}/norm2/scale", (features,)), (f"{block}/norm2/bias", (features,))]
    if in_features != features:
      shapes += [(f"{block}/shortcut/conv/kernel", (1, 1, in_features, features)),
                 (f"{block}/shortcut/norm/scale", (features,)),
                 (f"{block}/shortcut/norm/bias", (features,))]
    in_features = features
  return tuple(shapes + [("head/kernel", (in_features, num_classes)),
                         ("head/bias", (num_classes,))])


# ResNet-18's and the LMs' initial losses vary by a few percent from one draw to the
# next, so their peers share one draw too.
PARAM_SHAPES["resnet18"] = resnet18_shapes()


def transformer_lm_shapes(vocab_size, num_layers, embed_dim, num_heads, mlp_dim, **_):
  """jaxlab's transformer_lm parameters (blocks stacked along a leading layer axis, as
  nnx.scan holds them; query/key/value kernels D x N x H), named by their paths."""
  layers, heads, head_dim = num_layers, num_heads, embed_dim // num_heads
  block = "blocks"
  return (("embed/embedding", (vocab_size, embed_dim)),
          (f"{block}/attention_norm/scale", (layers, embed_dim)),
          *((f"{block}/attention/{name}/kernel", (layers, embed_dim, heads, head_dim))
            for name in ("query", "key", "value")),
          (f"{block}/attention/out/kernel", (layers, heads, head_dim, embed_dim)),
          (f"{block}/mlp_norm/scale", (layers, embed_dim)),
          (f"{block}/mlp/gate/kernel", (layers, embed_dim, mlp_dim)),
          (f"{block}/mlp/up/kernel", (layers, embed_dim, mlp_dim)),
          (f"{block}/mlp/down/kernel", (layers, mlp_dim, embed_dim)),
          ("final_norm/scale", (embed_dim,)),
          ("head/kernel", (embed_dim, vocab_size)))


def get_workload(name: str) -> Workload:
  if name not in WORKLOADS:
    raise ValueError(
        f"Unknown workload {name!r}; choose one of {sorted(WORKLOADS)}.")
  return WORKLOADS[name]


# ----------------------------------------------------------------------------
# Initial weights.


def glorot_uniform(shape, rng: np.random.Generator) -> np.ndarray:
  """Keras' GlorotUniform: fans include the receptive field for conv kernels."""
  receptive_field = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
  fan_in, fan_out = shape[-2] * receptive_field, shape[-1] * receptive_field
  limit = np.sqrt(6.0 / (fan_in + fan_out))
  return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def truncated_normal(shape, fan_in, scale, rng):
  """Flax's variance_scaling(scale, 'fan_in', 'truncated_normal'): a normal cut at 2
  standard deviations, rescaled to variance scale / fan_in."""
  std = np.sqrt(scale / fan_in) / 0.87962566103423978
  return (std * _standard_truncated(shape, rng)).astype(np.float32)


def _standard_truncated(shape, rng):
  values = rng.standard_normal(shape)
  while (outside := np.abs(values) > 2).any():
    values[outside] = rng.standard_normal(outside.sum())
  return values


def make_resnet_init(rng, shapes=PARAM_SHAPES["resnet18"]) -> dict[str, np.ndarray]:
  """jaxlab's resnet18 initialisation: he_normal convolutions, BatchNorm scale 1 (0
  for each block's last), biases 0, a lecun_normal head."""
  params = {}
  for name, shape in shapes:
    if name.endswith("/kernel"):
      fan_in = int(np.prod(shape[:-1]))
      params[name] = truncated_normal(shape, fan_in, 1.0 if name == "head/kernel" else 2.0, rng)
    elif name.endswith("norm2/scale"):
      params[name] = np.zeros(shape, np.float32)
    elif name.endswith("/scale"):
      params[name] = np.ones(shape, np.float32)
    else:
      params[name] = np.zeros(shape, np.float32)
  return params


def make_lm_init(rng, shapes) -> dict[str, np.ndarray]:
  """jaxlab's transformer_lm initialisation: embedding N(0, 1/D), lecun_normal kernels
  (fan-in: every input axis but the layer axis), norm scales 1."""
  params = {}
  for name, shape in shapes:
    if name == "embed/embedding":
      params[name] = (rng.standard_normal(shape) * shape[1] ** -0.5).astype(np.float32)
    elif name.endswith("/scale"):
      params[name] = np.ones(shape, np.float32)
    else:
      stacked = name.startswith("blocks/")
      inputs = shape[1:-1] if stacked else shape[:-1]
      if name.endswith("attention/out/kernel"):
        inputs = shape[1:3]  # N x H in, D out
      elif name.split("/")[-2] in ("query", "key", "value"):
        inputs = shape[1:2]  # D in, N x H out
      params[name] = truncated_normal(shape, int(np.prod(inputs)), 1.0, rng)
  return params


def make_init(workload: str, seed: int) -> dict[str, np.ndarray]:
  """Glorot-uniform kernels and zero biases, named as in PARAM_SHAPES (resnet18 and
  the LMs: their own initialisations)."""
  rng = np.random.default_rng(seed)
  params = {}
  spec = get_workload(workload)
  if spec.model == "resnet18":
    return make_resnet_init(rng)
  if spec.model == "transformer_lm":
    return make_lm_init(rng, spec.param_shapes)
  if not spec.shares_init:
    return params
  for name, shape in spec.param_shapes:
    if name.endswith("/kernel"):
      params[name] = glorot_uniform(shape, rng)
    else:
      params[name] = np.zeros(shape, np.float32)
  return params


def check_init(params: dict[str, np.ndarray], workload: Workload) -> None:
  """Fails with the expected layout when INIT.npz does not fit the workload."""
  expected = dict(workload.param_shapes)
  got = {name: tuple(value.shape) for name, value in params.items()}
  if got != expected:
    raise ValueError(
        f"INIT.npz does not match workload {workload.name!r}: expected "
        f"{expected}, got {got}. Make it with "
        f"benchmarks.peers.common.make_init({workload.name!r}, seed).")


# ----------------------------------------------------------------------------
# Synthetic MNIST.


def _stroke_templates(rng: np.random.Generator, strokes_per_class=3):
  """One 28x28 'digit' per class: a few blurred quadratic Bezier strokes."""
  yy, xx = np.mgrid[0:28, 0:28].astype(np.float32)
  t = np.linspace(0.0, 1.0, 24, dtype=np.float32)[:, None]
  templates = np.zeros((NUM_CLASSES, 28, 28), np.float32)
  for c in range(NUM_CLASSES):
    for _ in range(strokes_per_class):
      p0, p1, p2 = rng.uniform(6, 22, size=(3, 2)).astype(np.float32)
      points = (1 - t)**2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
      d2 = ((yy[None] - points[:, 0, None, None])**2 +
            (xx[None] - points[:, 1, None, None])**2)
      templates[c] = np.maximum(templates[c], np.exp(-d2 / 2.0).max(0))
  return templates


def _shifted(templates, max_shift):
  """All translations of each template: (classes, shifts, 28, 28)."""
  shifts = range(-max_shift, max_shift + 1)
  return np.stack([
      np.stack([np.roll(tpl, (dy, dx), axis=(0, 1))
                for dy in shifts for dx in shifts]) for tpl in templates
  ])


def _draw(shifted, n, rng):
  num_shifts = shifted.shape[1]
  labels = rng.integers(0, NUM_CLASSES, size=n)
  # A faint copy of another class makes some examples genuinely ambiguous,
  # so accuracy stays below 100% and differences between peers can show.
  distractor = (labels + rng.integers(1, NUM_CLASSES, size=n)) % NUM_CLASSES
  images = (rng.uniform(0.7, 1.0, size=(n, 1, 1)) *
            shifted[labels, rng.integers(0, num_shifts, size=n)] +
            rng.uniform(0.0, 0.8, size=(n, 1, 1)) *
            shifted[distractor, rng.integers(0, num_shifts, size=n)] +
            rng.normal(0.0, 0.15, size=(n, 28, 28)))
  images = np.clip(images, 0.0, 1.0).astype(np.float32)[..., None]
  return images, labels.astype(np.int32)


def make_synthetic_mnist(n_train: int, n_test: int,
                         seed: int) -> dict[str, np.ndarray]:
  """MNIST-shaped data: x_* float32 (N, 28, 28, 1) in [0, 1], y_* int32 (N,).

  Each class is a fixed random stroke pattern, drawn shifted by up to 2
  pixels, with random contrast, a fainter second class overlaid, and noise.
  Train and test share the class patterns.
  """
  rng = np.random.default_rng(seed)
  shifted = _shifted(_stroke_templates(rng), max_shift=2)
  x_train, y_train = _draw(shifted, n_train, rng)
  x_test, y_test = _draw(shifted, n_test, rng)
  return {"x_train": x_train, "y_train": y_train,
          "x_test": x_test, "y_test": y_test}


def make_workload_data(workload: Workload, seed: int, cache_dir=None) -> dict[str, np.ndarray]:
  """The data of a larger workload (the MNIST ones share make_synthetic_mnist's).

  cifar: jaxlab's synthetic cifar10 images as float32 in [0, 1], NHWC. python_docs:
  the packed byte rows jaxlab's loader makes (`tokens`, `segment_ids`, `positions`,
  int32 N x seq_len, train and test), tokenized into `cache_dir`, where jaxlab's own
  run finds them again (`text_data_fields`).
  """
  if workload.data == "cifar":
    from jaxlab.data import synthetic  # pylint: disable=g-import-not-at-top
    train, test = synthetic.arrays("cifar10", workload.n_train, workload.n_test, seed)
    return {"x_train": train["image"].astype(np.float32) / 255.0, "y_train": train["label"],
            "x_test": test["image"].astype(np.float32) / 255.0, "y_test": test["label"]}
  from jaxlab import data as data_lib  # pylint: disable=g-import-not-at-top
  from jaxlab.data import sources  # pylint: disable=g-import-not-at-top
  from jaxlab import config as config_lib  # pylint: disable=g-import-not-at-top
  data_config = config_lib.defaults().data
  data_config.update(text_data_fields(workload, cache_dir))
  splits = data_lib.load(data_config)
  out = {}
  for split, source in (("train", splits.train), ("test", splits.test)):
    rows = sources.read_rows(source, 0, len(source))
    out.update({f"{key}_{split}": np.asarray(rows[key], np.int32) for key in rows})
  return out


def text_data_fields(workload: Workload, cache_dir) -> dict:
  """jaxlab's data fields of a python_docs workload: byte rows cached in cache_dir."""
  return dict(name="python_docs", tokenizer="byte", seq_len=dict(workload.options)["seq_len"],
              num_train=workload.n_train, num_test=workload.n_test, cache_dir=str(cache_dir))


def text_cache_dir(data_path) -> str:
  """Where the tokenized rows of DATA.npz's text workload are cached: beside it."""
  return os.path.join(os.path.dirname(os.path.abspath(data_path)), "text_cache")


def save_npz(path, arrays: dict[str, np.ndarray]) -> None:
  np.savez(path, **arrays)


def load_npz(path) -> dict[str, np.ndarray]:
  with np.load(path) as f:
    return {name: f[name] for name in f.files}


# ----------------------------------------------------------------------------
# Command line and results.


def parse_args(argv=None, extra_flags=None) -> argparse.Namespace:
  """The flags every peer takes; unset epochs and batch_size follow the workload."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workload", required=True, choices=sorted(WORKLOADS))
  parser.add_argument("--data", required=True, help="npz from save_npz(make_synthetic_mnist(...))")
  parser.add_argument("--init", required=True, help="npz from save_npz(make_init(...))")
  parser.add_argument("--epochs", type=int, default=None,
                      help="0 only evaluates the initial weights.")
  parser.add_argument("--batch_size", type=int, default=None)
  parser.add_argument("--seed", type=int, default=0, help="Seeds shuffling.")
  parser.add_argument("--out", required=True, help="RESULT.json to write.")
  for add_flag in extra_flags or ():
    add_flag(parser)
  args = parser.parse_args(argv)
  workload = get_workload(args.workload)
  if args.epochs is None:
    args.epochs = workload.epochs
  if args.batch_size is None:
    args.batch_size = workload.batch_size
  return args


def peak_rss_mb() -> float:
  """This program's peak resident memory. VmHWM, not ru_maxrss: a child process's
  ru_maxrss starts from its parent's size at fork, so every peer would report the
  runner's memory."""
  try:
    with open("/proc/self/status") as status:
      for line in status:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024.0  # kB
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux.


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Every peer drops the last partial batch, so all take the same steps."""
  return num_examples // batch_size


def timing_fields(fit_start: float, epoch_ends: list, steps_per_epoch: int,
                  batch_size: int) -> dict:
  """The suite's two measures, the same for every peer, from clock readings.

  `fit_start` is read before anything of the fit happens (data placement,
  tracing, compilation); `epoch_ends[k]` once epoch k's last step is done. So
  `fit_seconds` runs from the first step's start to the last step's end with
  compilation included, and the steady rate, from epochs 2..N, excludes it;
  `warmup_seconds` is what the first epoch cost beyond a steady one.
  """
  epochs = len(epoch_ends)
  bounds = [fit_start, *epoch_ends]
  epoch_seconds = [end - start for start, end in zip(bounds, bounds[1:])]
  fields = {
      "fit_seconds": epoch_ends[-1] - fit_start if epochs else 0.0,
      "epoch_seconds": epoch_seconds,
      "steps_per_epoch": steps_per_epoch,
      "steps": epochs * steps_per_epoch,
      "examples": epochs * steps_per_epoch * batch_size,
      "steady_us_per_step": None,
      "steady_examples_per_second": None,
      "warmup_seconds": None,
  }
  if epochs >= 2 and steps_per_epoch:
    steady_seconds = epoch_ends[-1] - epoch_ends[0]
    steady_steps = (epochs - 1) * steps_per_epoch
    fields.update(
        steady_us_per_step=1e6 * steady_seconds / steady_steps,
        steady_examples_per_second=steady_steps * batch_size / steady_seconds,
        warmup_seconds=epoch_seconds[0] - steady_seconds / (epochs - 1))
  return fields


def phase_clock(imported: float, fit_start: float, fit_end: float) -> dict:
  """Wall-clock times (seconds since the epoch) of the imports' end and the fit's start
  and end, from perf_counter readings: with the runner's clock at the process's start
  and exit and `write_result`'s, they cut a whole process into phases (report.py)."""
  offset = time.time() - time.perf_counter()
  return {"imported_at": imported + offset, "fit_start_at": fit_start + offset,
          "fit_end_at": fit_end + offset}


def write_result(path, fields: dict) -> None:
  result = {
      "status": "ok",
      **fields,
      "written_at": time.time(),
      "peak_rss_mb": peak_rss_mb(),
      "python": platform.python_version(),
      "numpy": np.__version__,
      "cpu_count": os.cpu_count(),
      "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
      "argv": sys.argv,
  }
  with open(path, "w") as f:
    json.dump(result, f, indent=2, default=_to_builtin)
    f.write("\n")


def _to_builtin(value):
  if isinstance(value, np.generic):
    return value.item()
  raise TypeError(f"Cannot write {type(value).__name__} to RESULT.json")
