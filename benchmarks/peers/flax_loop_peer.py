"""Flax peer: the loop of flax/examples/mnist/train.py (Linen, optax).

One jax.jit-compiled train_step per batch; each epoch the host shuffles with
numpy, drops the incomplete last batch and gathers every batch by fancy
indexing, as the Flax example does.

    python -m benchmarks.peers.flax_loop_peer --workload=seed_mlp \
        --data=DATA.npz --init=INIT.npz --out=RESULT.json
"""

import time

_PROCESS_START = time.perf_counter()

import flax  # pylint: disable=g-import-not-at-top
import flax.linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
import optax

from benchmarks.peers import common

_IMPORT_SECONDS = time.perf_counter() - _PROCESS_START
EVAL_BATCH = 1000


class MLP(nn.Module):
  """Flatten -> Dense(128) -> relu -> Dense(10)."""

  @nn.compact
  def __call__(self, x):
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(128, name="dense1")(x))
    return nn.Dense(10, name="dense2")(x)


class CNN(nn.Module):
  """The Flax examples' MNIST CNN."""

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(32, (3, 3), name="conv1")(x))
    x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
    x = nn.relu(nn.Conv(64, (3, 3), name="conv2")(x))
    x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(256, name="dense1")(x))
    return nn.Dense(10, name="dense2")(x)


MODELS = {"mlp": MLP, "cnn": CNN}


def make_optimizer(workload):
  if workload.optimizer == "adam":
    return optax.adam(workload.learning_rate, b1=common.ADAM_B1,
                      b2=common.ADAM_B2, eps=common.ADAM_EPS)
  return optax.sgd(workload.learning_rate, momentum=common.SGD_MOMENTUM)


def params_from_init(init):
  """{'dense1/kernel': a} -> {'dense1': {'kernel': a}}, Linen's layout."""
  params = {}
  for name, value in init.items():
    layer, leaf = name.split("/")
    params.setdefault(layer, {})[leaf] = jnp.asarray(value)
  return params


def cross_entropy(logits, labels):
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


@jax.jit
def train_step(state, images, labels):
  def loss_fn(params):
    logits = state.apply_fn({"params": params}, images)
    return cross_entropy(logits, labels), logits

  (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
  return state.apply_gradients(grads=grads), loss, accuracy


@jax.jit
def eval_step(state, images, labels):
  logits = state.apply_fn({"params": state.params}, images)
  return cross_entropy(logits, labels), jnp.sum(jnp.argmax(logits, -1) == labels)


def evaluate(state, images, labels):
  """Mean loss and accuracy, in fixed-size chunks (one compilation)."""
  losses, correct = [], 0
  for start in range(0, len(images), EVAL_BATCH):
    chunk = slice(start, start + EVAL_BATCH)
    loss, hits = eval_step(state, images[chunk], labels[chunk])
    losses.append(float(loss) * len(images[chunk]))
    correct += int(hits)
  return sum(losses) / len(images), correct / len(images)


def train_epoch(step_fn, state, data, batch_size, rng):
  """One shuffled pass without the incomplete last batch, as in the example."""
  steps_per_epoch = common.steps_per_epoch(len(data["x_train"]), batch_size)
  perms = rng.permutation(len(data["x_train"]))[:steps_per_epoch * batch_size]
  losses, accuracies = [], []
  for perm in perms.reshape((steps_per_epoch, batch_size)):
    state, loss, accuracy = step_fn(state, data["x_train"][perm],
                                    data["y_train"][perm])
    losses.append(loss)
    accuracies.append(accuracy)
  losses, accuracies = jax.device_get((losses, accuracies))  # Waits for the epoch.
  return state, float(np.mean(losses)), float(np.mean(accuracies))


def fit(state, data, args):
  """Trains; the step's compile time is also measured on its own (AOT lowering).

  The data stays in host memory, as in the example: each batch is gathered by
  numpy and copied to the device by the step call, inside the timed epochs.
  """
  rng = np.random.RandomState(args.seed)
  fit_start = time.perf_counter()
  batch = (data["x_train"][:args.batch_size], data["y_train"][:args.batch_size])
  step_fn = train_step.lower(state, *batch).compile()
  compile_seconds = time.perf_counter() - fit_start
  epoch_ends, epoch_loss = [], None
  for _ in range(args.epochs):
    state, epoch_loss, _ = train_epoch(step_fn, state, data, args.batch_size, rng)
    epoch_ends.append(time.perf_counter())
  return state, fit_start, epoch_ends, {"compile_seconds": compile_seconds,
                                        "final_train_loss": epoch_loss}


def main(argv=None):
  args = common.parse_args(argv)
  workload = common.get_workload(args.workload)
  data = common.load_npz(args.data)
  init = common.load_npz(args.init)
  common.check_init(init, workload)
  model = MODELS[workload.model]()
  state = train_state.TrainState.create(
      apply_fn=model.apply, params=params_from_init(init),
      tx=make_optimizer(workload))
  n = common.INITIAL_LOSS_EXAMPLES
  initial_loss, _ = evaluate(state, data["x_train"][:n], data["y_train"][:n])
  initial_logits = state.apply_fn(
      {"params": state.params},
      data["x_train"][:common.INITIAL_LOGITS_EXAMPLES]).tolist()
  fields = {"framework": "flax", "variant": "linen_jit_loop",
            "workload": workload.name, "batch_size": args.batch_size,
            "epochs": args.epochs, "initial_loss": initial_loss,
            "initial_logits": initial_logits,
            "import_seconds": _IMPORT_SECONDS}
  steps_per_epoch = common.steps_per_epoch(len(data["x_train"]), args.batch_size)
  fit_start, epoch_ends = 0.0, []
  if args.epochs > 0:
    state, fit_start, epoch_ends, extra = fit(state, data, args)
    fields.update(extra)
  fields.update(common.timing_fields(fit_start, epoch_ends, steps_per_epoch,
                                     args.batch_size))
  if epoch_ends:
    fields.update(common.phase_clock(_PROCESS_START + _IMPORT_SECONDS, fit_start,
                                     epoch_ends[-1]))
  test_loss, test_accuracy = evaluate(state, data["x_test"], data["y_test"])
  fields.update(test_loss=test_loss, test_accuracy=test_accuracy,
                versions={"jax": jax.__version__, "jaxlib": jaxlib.__version__,
                          "flax": flax.__version__, "optax": optax.__version__},
                jax_backend=jax.default_backend(),
                device=str(jax.devices()[0].platform))
  common.write_result(args.out, fields)


if __name__ == "__main__":
  main()
