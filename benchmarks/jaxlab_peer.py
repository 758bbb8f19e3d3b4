"""jaxlab's entry in the benchmark suite: the same workload, data and initial
weights as the peers, trained by `jaxlab.train.loop.run` from the shipped
experiment config (mnist_mlp or mnist_cnn), in its own process.

  python -m benchmarks.jaxlab_peer --workload=seed_mlp --data=DATA.npz --init=INIT.npz --out=R.json
"""

import time

_STARTED = time.perf_counter()

import pathlib  # pylint: disable=wrong-import-position
import tempfile  # pylint: disable=wrong-import-position

from benchmarks.peers import common  # pylint: disable=wrong-import-position

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / 'experiments'
EXPERIMENT_OF = {'mlp': 'mnist_mlp', 'cnn': 'mnist_cnn'}
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


def jaxlab_params(init, model_kind):
  """INIT.npz's flat names as jaxlab's nested parameter dict."""
  params = {}
  for name, value in init.items():
    layer, leaf = name.split('/')
    node = params
    for key in PARAM_PATHS[model_kind][layer]:
      node = node.setdefault(key, {})
    node[leaf] = value
  return params


def make_config(workload, args, data_path):
  from ml_collections import config_flags
  module = config_flags.config_flags._LoadConfigModule(  # pylint: disable=protected-access
      'experiment', str(EXPERIMENTS / f'{EXPERIMENT_OF[workload.model]}.py'))
  config = module.get_config()
  config.data.name = 'npz'
  config.data.path = data_path
  config.data.batch_size = args.batch_size
  config.data.eval_batch_size = 1000
  config.num_epochs = args.epochs
  import numpy as np
  with np.load(data_path) as data:
    steps_per_epoch = len(data['y_train']) // args.batch_size
  config.steps_per_loop = args.steps_per_loop or steps_per_epoch
  config.log_every_steps = steps_per_epoch
  config.eval_every_steps = 0
  config.checkpoint_every_steps = 0
  config.checkpoint.async_save = bool(args.async_checkpoint)
  config.compute_dtype = args.compute_dtype
  config.optimizer.learning_rate = workload.learning_rate
  config.progress = False
  config.plots = False
  config.seed = args.seed
  return config


def main(argv=None):
  args = common.parse_args(argv, extra_flags=[add_flags])
  from jaxlab import runtime
  runtime.setup()
  import jax
  from jaxlab.train import loop
  workload = common.get_workload(args.workload)
  init = common.load_npz(args.init)
  common.check_init(init, workload)
  config = make_config(workload, args, args.data)
  with tempfile.TemporaryDirectory() as workdir:
    fit_started = time.perf_counter()
    summary = loop.run(config, workdir, init_params=jaxlab_params(init, workload.model))
    fit_seconds = time.perf_counter() - fit_started
  timings = summary['timings']
  steps = summary['step']
  fields = {'framework': 'jaxlab', 'variant': f'scan{config.steps_per_loop}_{args.compute_dtype}',
            'workload': workload.name, 'batch_size': args.batch_size, 'epochs': args.epochs,
            'steps_per_loop': config.steps_per_loop, 'compute_dtype': args.compute_dtype,
            'import_seconds': fit_started - _STARTED}
  fields.update(common.timing_fields(timings['train'], steps, steps * args.batch_size, None))
  fields.update(compile_seconds=timings['compile'], setup_seconds=timings['setup'],
                checkpoint_seconds=timings['save'], fit_seconds=fit_seconds,
                test_accuracy=summary['eval']['accuracy'], test_loss=summary['eval']['loss'],
                versions={'jax': jax.__version__}, jax_backend=jax.default_backend())
  common.write_result(args.out, fields)


if __name__ == '__main__':
  main()
