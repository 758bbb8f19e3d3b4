"""Keras peer: the TensorFlow quickstart as written, on the TensorFlow backend.

`model.compile(optimizer='adam', ...)`, `model.fit(x_train, y_train,
epochs=...)`, `model.evaluate(x_test, y_test)`, with Keras' defaults
(shuffling, verbose progress bar, jit_compile='auto', which is off on CPU).
The only additions are weights set from INIT.npz, a callback that reads the
clock at epoch ends, and the training set cut to whole batches (every peer of
the suite drops the last partial batch, so all take the same steps).

    python -m benchmarks.peers.keras_peer --workload=seed_mlp \
        --data=DATA.npz --init=INIT.npz --out=RESULT.json
"""

import os
import time

_PROCESS_START = time.perf_counter()
# tf.keras is Keras 3, which picks its backend from this variable.
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # pylint: disable=g-import-not-at-top

from benchmarks.peers import common

_IMPORT_SECONDS = time.perf_counter() - _PROCESS_START


def make_model(kind):
  """The quickstart's Sequential model, or the Keras twin of the Flax CNN."""
  layers = tf.keras.layers
  if kind == "mlp":
    return tf.keras.models.Sequential([
        tf.keras.Input(shape=(28, 28)),
        layers.Flatten(),
        layers.Dense(128, activation="relu", name="dense1"),
        layers.Dense(10, name="dense2"),
    ])
  return tf.keras.models.Sequential([
      tf.keras.Input(shape=common.IMAGE_SHAPE),
      layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
      layers.AveragePooling2D(2, 2),
      layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2"),
      layers.AveragePooling2D(2, 2),
      layers.Flatten(),
      layers.Dense(256, activation="relu", name="dense1"),
      layers.Dense(10, name="dense2"),
  ])


def set_init(model, init):
  """Keras kernels are (in, out) / HWIO already: INIT.npz loads as it is."""
  for layer in model.layers:
    if layer.weights:
      layer.set_weights([init[f"{layer.name}/kernel"], init[f"{layer.name}/bias"]])


def make_optimizer(workload):
  if workload.optimizer == "adam":
    if workload.learning_rate == 1e-3:
      return "adam"  # As the quickstart writes it; Keras' defaults match ours.
    return tf.keras.optimizers.Adam(workload.learning_rate)
  return tf.keras.optimizers.SGD(workload.learning_rate,
                                 momentum=common.SGD_MOMENTUM)


class Clock(tf.keras.callbacks.Callback):
  """The wall clock at each epoch's end. No batch hooks: defining one would make
  fit() call back after every batch, which the quickstart's fit does not."""

  def __init__(self):
    super().__init__()
    self.epoch_ends = []

  def on_epoch_end(self, epoch, logs=None):
    self.epoch_ends.append(time.perf_counter())


def images_for(kind, images):
  """The quickstart feeds (N, 28, 28) images; the CNN keeps NHWC."""
  return images[..., 0] if kind == "mlp" else images


def add_flags(parser):
  parser.add_argument("--verbose", default="auto",
                      help="model.fit's verbose; the quickstart leaves 'auto'.")


def main(argv=None):
  args = common.parse_args(argv, extra_flags=[add_flags])
  tf.keras.utils.set_random_seed(args.seed)
  workload = common.get_workload(args.workload)
  data = common.load_npz(args.data)
  init = common.load_npz(args.init)
  common.check_init(init, workload)
  x_train = images_for(workload.model, data["x_train"])
  x_test = images_for(workload.model, data["x_test"])
  y_train, y_test = data["y_train"], data["y_test"]

  model = make_model(workload.model)
  set_init(model, init)
  loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  model.compile(optimizer=make_optimizer(workload), loss=loss_fn,
                metrics=["accuracy"])
  n = common.INITIAL_LOSS_EXAMPLES
  initial_loss = float(loss_fn(y_train[:n], model(x_train[:n], training=False)))
  initial_logits = model(x_train[:common.INITIAL_LOGITS_EXAMPLES],
                         training=False).numpy().tolist()
  fields = {"framework": "keras", "variant": "tf_keras_fit",
            "workload": workload.name, "batch_size": args.batch_size,
            "epochs": args.epochs, "initial_loss": initial_loss,
            "initial_logits": initial_logits,
            "import_seconds": _IMPORT_SECONDS,
            "versions": {"tensorflow": tf.__version__,
                         "keras": tf.keras.__version__},
            "device": "cpu" if not tf.config.list_physical_devices("GPU") else "gpu",
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}
  verbose = args.verbose if args.verbose == "auto" else int(args.verbose)
  # Every peer drops the last partial batch; fit() would train it, so the
  # training set is cut to whole batches: the same steps and examples as the
  # others (which leave out a random few each epoch; Keras, the last few).
  steps_per_epoch = common.steps_per_epoch(len(x_train), args.batch_size)
  x_train = x_train[:steps_per_epoch * args.batch_size]
  y_train = y_train[:steps_per_epoch * args.batch_size]
  clock, fit_start = Clock(), 0.0
  if args.epochs > 0:
    fit_start = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=args.epochs,
                        batch_size=args.batch_size, verbose=verbose,
                        callbacks=[clock])
    fields["final_train_loss"] = float(history.history["loss"][-1])
  fields.update(common.timing_fields(fit_start, clock.epoch_ends, steps_per_epoch,
                                     args.batch_size))
  if clock.epoch_ends:
    fields.update(common.phase_clock(_PROCESS_START + _IMPORT_SECONDS, fit_start,
                                     clock.epoch_ends[-1]))
  test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=verbose)
  fields.update(test_loss=float(test_loss), test_accuracy=float(test_accuracy),
                jit_compile=bool(model.jit_compile))
  common.write_result(args.out, fields)


if __name__ == "__main__":
  main()
