"""jaxlab's entry in the benchmark suite: the same workload, data and initial
weights as the peers, trained by `jaxlab.train.loop.run` from the shipped
experiment config (mnist_mlp, mnist_cnn; cifar10_resnet18 and python_docs_lm for the
larger workloads, set to the workload's recipe: no augmentation, a constant learning
rate), in its own process, from INIT.npz's weights (the ResNet's and the LMs' drawn as
jaxlab draws them).

  python -m benchmarks.jaxlab_peer --workload=seed_mlp --data=DATA.npz --init=INIT.npz --out=R.json

Timed as every peer is (`benchmarks.peers.common.timing_fields`): the fit runs from
placing the training set on the devices, through compiling the training blocks, to
the end of the last epoch, and the steady rate comes from epochs 2..N. The pieces are
read off the run itself: the placement from a clock around
`jaxlab.data.pipeline.place_rows`, the compilation from the run's `timings`, and each
epoch's time from the `train/steps_per_second` that jaxlab logs at every epoch end
(log_every_steps is one epoch; an epoch ends when the loop has read its metrics back,
as the peers' end when they have read their losses). The runner turns jaxlab's
persistent compilation cache off (JAXLAB_COMPILATION_CACHE=''), so every run compiles,
as the peers' do.

The initial loss and logits are computed on the very state the run starts from
(taken when `Session.create` returns, before the first step) by jaxlab's prediction
function, so they check jaxlab's model, its loading of INIT.npz and its input scaling
against the peers.
"""

import time

_STARTED = time.perf_counter()

import contextlib  # pylint: disable=wrong-import-position
import pathlib  # pylint: disable=wrong-import-position
import tempfile  # pylint: disable=wrong-import-position
from unittest import mock  # pylint: disable=wrong-import-position

from benchmarks.peers import common  # pylint: disable=wrong-import-position

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / 'experiments'
EXPERIMENT_OF = {'mlp': 'mnist_mlp', 'cnn': 'mnist_cnn', 'resnet18': 'cifar10_resnet18',
                 'transformer_lm': 'python_docs_lm'}
# Peer parameter names -> jaxlab's parameter paths.
PARAM_PATHS = {
    'mlp': {'dense1': ('hidden', 0), 'dense2': ('head',)},
    'cnn': {'conv1': ('convs', 0), 'conv2': ('convs', 1), 'dense1': ('dense', 0),
            'dense2': ('head',)},
}


def add_flags(parser):
  parser.add_argument('--steps_per_loop', type=int, default=0,
                      help='Train steps per compiled call; 0: one epoch.')
  parser.add_argument('--compute_dtype', default='float32', help='float32 or bfloat16.')
  parser.add_argument('--async_checkpoint', type=int, default=1,
                      help='1: save the final checkpoint asynchronously.')
  parser.add_argument('--attention_implementation', default='',
                      help='The LMs\' model.attention_implementation: xla or cudnn (flash '
                      'attention on GPUs, bf16); empty: the model\'s default.')
  parser.add_argument('--placement', default='device',
                      help='data.placement: device (the training set on the devices) or '
                      'stream (read by Grain as it trains).')


def jaxlab_params(init, model_kind):
  """INIT.npz's flat names as jaxlab's nested parameter dict (resnet18's names are
  already jaxlab's paths)."""
  params = {}
  for name, value in init.items():
    *path, leaf = name.split('/')
    if model_kind in PARAM_PATHS:
      path = PARAM_PATHS[model_kind][path[0]]
    node = params
    for key in path:
      node = node.setdefault(int(key) if str(key).isdigit() else key, {})
    node[leaf] = value
  return params


def make_config(workload, args, data_path, steps_per_epoch):
  from ml_collections import config_flags
  module = config_flags.config_flags._LoadConfigModule(  # pylint: disable=protected-access
      'experiment', str(EXPERIMENTS / f'{EXPERIMENT_OF[workload.model]}.py'))
  config = module.get_config()
  config.data.name = 'npz'
  config.data.path = data_path
  config.data.batch_size = args.batch_size
  config.data.eval_batch_size = 1000
  if workload.data != 'mnist':
    set_large_workload(config, workload, data_path)
  if args.attention_implementation:
    config.model.attention_implementation = args.attention_implementation
  config.num_epochs = max(args.epochs, 1)  # --epochs=0 builds the run but never trains it
  config.steps_per_loop = args.steps_per_loop or steps_per_epoch
  config.log_every_steps = steps_per_epoch  # one train record per epoch: the epoch clock
  config.eval_every_steps = 0  # evaluation and the checkpoint come after the last step
  config.checkpoint_every_steps = 0
  config.checkpoint.async_save = bool(args.async_checkpoint)
  config.data.placement = args.placement
  config.compute_dtype = args.compute_dtype
  config.optimizer.learning_rate = workload.learning_rate
  config.progress = False
  config.plots = False
  config.seed = args.seed
  return config


def set_large_workload(config, workload, data_path):
  """The experiment's model at the workload's sizes, trained by the peers' recipe."""
  options = dict(workload.options)
  if workload.data == 'python_docs':
    config.data.update(common.text_data_fields(workload, common.text_cache_dir(data_path)))
    import numpy as np
    with np.load(data_path) as data:  # as many rows as DATA.npz holds (the short mode's)
      config.data.num_train = len(data['tokens_train'])
      config.data.num_test = len(data['tokens_test'])
    config.data.eval_batch_size = workload.batch_size
    config.model.update({k: options[k] for k in ('num_layers', 'embed_dim', 'num_heads',
                                                 'mlp_dim')})
    config.optimizer.b2 = common.ADAMW_B2
    config.optimizer.grad_clip_norm = common.GRAD_CLIP_NORM
  else:
    config.data.augment = ()
    config.data.eval_batch_size = 256
    config.task.label_smoothing = 0.0
    config.optimizer.nesterov = False
    config.optimizer.momentum = common.SGD_MOMENTUM
  config.optimizer.schedule = 'constant'
  config.optimizer.warmup_percent = 0.0
  config.optimizer.weight_decay = workload.weight_decay


class Probe:
  """What the run itself does not report: its data placement time and initial outputs."""

  def __init__(self, workload):
    self.workload = workload
    self.place_seconds = 0.0
    # perf_counter readings where the fit starts: placing the training set on the devices,
    # or (streamed, nothing placed) compiling the training blocks.
    self.first_place_at = None
    self.first_compile_at = None
    self.look_seconds = 0.0  # the initial outputs, computed between compiling and training
    self.session = None
    self.initial = None

  @contextlib.contextmanager
  def watching(self):
    import jax
    from jaxlab.data import pipeline
    from jaxlab.train import session as session_lib
    create, place_rows = session_lib.Session.create, pipeline.place_rows
    precompile = session_lib.Session.precompile

    def timed_precompile(session):
      self.first_compile_at = self.first_compile_at or time.perf_counter()
      return precompile(session)

    def timed_place_rows(*args, **kwargs):
      started = time.perf_counter()
      self.first_place_at = self.first_place_at or started
      rows = jax.block_until_ready(place_rows(*args, **kwargs))
      self.place_seconds += time.perf_counter() - started
      return rows

    def create_and_look(*args, **kwargs):
      self.session = create(*args, **kwargs)
      looking = time.perf_counter()
      self.initial = initial_outputs(self.session, self.workload)
      self.look_seconds = time.perf_counter() - looking
      return self.session

    with mock.patch.object(pipeline, 'place_rows', timed_place_rows), \
        mock.patch.object(session_lib.Session, 'create', create_and_look), \
        mock.patch.object(session_lib.Session, 'precompile', timed_precompile):
      yield self


def _outputs(session, split, count, then):
  """(logits, then(logits, batch)) of the first `count` examples of a split (all for
  None), from the session's current state, through the task (the peer knows nothing of
  the batch): `then` compiled with the forward pass, one program, as a peer's jitted
  evaluation."""
  import jax
  from jaxlab.inference import forward
  from jaxlab.data import sources
  source = getattr(session.splits, split)
  batch = sources.read_rows(source, 0, count or len(source))
  batch = {name: batch[name] for name in session.task.batch_spec()}
  programs = session.programs.inference

  def look(variables, batch):
    logits = forward.logits(variables, batch, model=programs.model, task=session.task)
    return logits, then(logits, batch)

  return jax.jit(look)(session.state.variables, batch)


def initial_outputs(session, workload):
  import numpy as np
  logits, loss = _outputs(session, 'train', workload.initial_examples,
                          then=lambda logits, batch: session.task.loss(logits, batch)[0])
  initial_logits = None  # the LMs' are per position: their initial loss is compared
  if workload.shares_init and workload.model != 'transformer_lm':
    initial_logits = np.asarray(logits[:common.INITIAL_LOGITS_EXAMPLES]).tolist()
  return dict(initial_loss=float(loss), initial_logits=initial_logits)


def accuracy(metrics):
  """Test accuracy: of the images, or of the counted next tokens."""
  return metrics['accuracy'] if 'accuracy' in metrics else metrics['token_accuracy']


def untrained_test_metrics(session):
  """Test loss and accuracy of the initial state (for --epochs=0)."""
  import jax
  _, outputs = _outputs(session, 'test', None, then=session.task.eval_outputs)
  metrics = session.task.eval_metrics(jax.device_get(outputs))
  return dict(test_loss=metrics['loss'], test_accuracy=accuracy(metrics))


def epoch_records(workdir, steps_per_epoch, epochs):
  """The train record jaxlab wrote at each epoch's end (log_every_steps is one epoch)."""
  from jaxlab.workdir import writers
  records = [r for r in writers.read_records(workdir) if 'train/steps_per_second' in r]
  if [r['step'] for r in records] != [steps_per_epoch * (k + 1) for k in range(epochs)]:
    raise RuntimeError(f'Expected one train record per epoch of {steps_per_epoch} steps, got '
                       f'steps {[r["step"] for r in records]}: did log_every_steps change?')
  return records


def main(argv=None):
  args = common.parse_args(argv, extra_flags=[add_flags])
  from jaxlab.runtime import setup as runtime
  runtime.setup()
  import jax
  import numpy as np
  from jaxlab.train import loop
  workload = common.get_workload(args.workload)
  init = common.load_npz(args.init)
  common.check_init(init, workload)
  with np.load(args.data) as data:
    train_key = 'y_train' if 'y_train' in data.files else 'tokens_train'
    steps_per_epoch = common.steps_per_epoch(len(data[train_key]), args.batch_size)
  config = make_config(workload, args, args.data, steps_per_epoch)
  params = jaxlab_params(init, workload.model) if workload.shares_init else None
  fields = {'framework': 'jaxlab', 'workload': workload.name, 'batch_size': args.batch_size,
            'epochs': args.epochs, 'steps_per_loop': config.steps_per_loop,
            'variant': f'scan{config.steps_per_loop}_{args.compute_dtype}_{args.placement}',
            'placement': args.placement,
            'compute_dtype': args.compute_dtype, 'import_seconds': time.perf_counter() - _STARTED}
  imported = _STARTED + fields['import_seconds']
  probe = Probe(workload)
  with tempfile.TemporaryDirectory() as workdir, probe.watching():
    if args.epochs > 0:
      summary = loop.run(config, workdir, init_params=params)
      records = epoch_records(workdir, steps_per_epoch, args.epochs)
    else:
      from jaxlab.train import session as session_lib
      session_lib.Session.create(config, workdir, params)
      test = untrained_test_metrics(probe.session)
      probe.session.finish()
  fields.update(probe.initial)
  if args.epochs > 0:
    timings = summary['timings']
    # The fit: placement, then compilation, then the epochs (clock readings from 0);
    # each epoch's time is the one jaxlab measured itself, steps over steps/s.
    logged = [steps_per_epoch / r['train/steps_per_second'] for r in records]
    epoch_ends = list(np.cumsum(logged) + probe.place_seconds + timings['compile'])
    fields.update(common.timing_fields(0.0, epoch_ends, steps_per_epoch, args.batch_size))
    # As the peers' fits start: at placing the training set (streamed: at compiling); the
    # initial outputs (which the peers compute before their fits) fall inside it.
    fit_start = probe.first_place_at or probe.first_compile_at
    fields.update(common.phase_clock(imported, fit_start,
                                     fit_start + fields['fit_seconds'] + probe.look_seconds))
    fields.update(place_seconds=probe.place_seconds, compile_seconds=timings['compile'],
                  setup_seconds=timings['setup'], loop_train_seconds=timings['train'],
                  checkpoint_seconds=timings['save'], eval_seconds=timings['eval'],
                  finish_seconds=timings['finish'],
                  final_train_loss=records[-1]['train/loss'],
                  test_accuracy=accuracy(summary['eval']), test_loss=summary['eval']['loss'])
  else:
    fields.update(common.timing_fields(0.0, [], steps_per_epoch, args.batch_size))
    fields.update(test)
  from importlib import metadata
  fields.update(versions={name: metadata.version(name) for name in
                          ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint')},
                jax_backend=jax.default_backend(), device=jax.devices()[0].platform)
  common.write_result(args.out, fields)


if __name__ == '__main__':
  main()
