"""Malformed input of every kind exits 2 with one paragraph naming the problem: no traceback."""

import concurrent.futures

import pytest

from jaxlab import config as config_lib
from tests.conftest import load_config, run_cli

SMOKE = '--config=experiments/digits_cnn.py:smoke'

CONFIG_FILES = {
    'raises.py': 'def get_config(arg=None):\n  return 1 / 0\n',
    'no_get_config.py': 'X = 1\n',
    'returns_dict.py': 'def get_config(arg=None):\n  return {"seed": 0}\n',
    'syntax_error.py': 'def get_config(:\n',
}

# (command line after `jaxlab`, a fragment the error must contain). {tmp} is a fresh folder.
# These fail before JAX starts (about 0.4 s each).
CASES = [
    # values
    (['train', SMOKE, '--config.data.batch_size=0'], 'data.batch_size=0: must be at least 1'),
    (['train', SMOKE, '--config.data.batch_size=-4'], 'data.batch_size=-4'),
    (['train', SMOKE, '--config.num_epochs=-1'], 'num_epochs=-1: must be greater than 0'),
    (['train', SMOKE, '--config.num_epochs=0'], 'num_epochs=0'),
    (['train', SMOKE, '--config.num_steps=0'], 'num_steps=0'),
    (['train', SMOKE, '--config.steps_per_loop=0'], 'steps_per_loop=0'),
    (['train', SMOKE, '--config.log_every_steps=-1'], 'log_every_steps=-1'),
    (['train', SMOKE, '--config.optimizer.learning_rate=-1'], 'learning_rate=-1'),
    (['train', SMOKE, '--config.optimizer.learning_rate=nan'], 'must be a finite number'),
    (['train', SMOKE, '--config.optimizer.b1=1.5'], 'b1=1.5: must be less than 1'),
    (['train', SMOKE, '--config.optimizer.warmup_percent=150'], 'warmup_percent=150'),
    (['train', SMOKE, '--config.optimizer.end_factor=2'], 'end_factor=2'),
    (['train', SMOKE, '--config.optimizer.weight_decay=-0.1'], 'weight_decay=-0.1'),
    (['train', SMOKE, '--config.optimizer.name=adm'], "optimizer.name='adm': must be one of"),
    (['train', SMOKE, '--config.optimizer.schedule=linear'], 'schedule'),
    (['train', SMOKE, '--config.data.name=imagenet'], "data.name='imagenet'"),
    (['train', SMOKE, "--config.data.augment=('rotate',)"], "unknown ['rotate']"),
    (['train', SMOKE, '--config.data.synthetic_like=imagenet'], 'synthetic_like'),
    (['train', SMOKE, '--config.data.eval_batch_size=0'], 'eval_batch_size=0'),
    (['train', SMOKE, '--config.data.num_train=0'], 'num_train=0'),
    (['train', SMOKE, '--config.data.name=npz'], 'needs --config.data.path'),
    (['train', SMOKE, '--config.compute_dtype=float16'], 'compute_dtype'),
    (['train', SMOKE, '--config.remat=some'], 'remat'),
    (['train', SMOKE, '--config.grad_accum_steps=3'], 'not divisible by'),
    (['train', SMOKE, '--config.checkpoint.keep=0'], 'checkpoint.keep=0'),
    (['train', SMOKE, '--config.checkpoint.best_metric=eval/acc'], 'best_metric'),
    (['train', SMOKE, '--config.checkpoint.best_mode=maximum'], 'best_mode'),
    (['train', SMOKE, '--config.mesh.data=0'], 'mesh.data=0'),
    (['train', SMOKE, '--config.mesh.fsdp=-2'], 'mesh.fsdp=-2'),
    (['train', SMOKE, '--config.mesh.fsdp=-1'], 'at most one of'),
    (['train', SMOKE, "--config.sharding_rules=(('embed','model'),)"], "'model'"),
    (['train', SMOKE, '--config.model.name=a:b:c'], 'model.name'),
    # keys and types
    (['train', SMOKE, '--config.optimizer.lr=1'], '--config.optimizer.learning_rate'),
    (['train', SMOKE, '--config.seed=abc'], 'seed'),
    # config files
    (['train', '--config=README.md'], 'README.md (line'),
    (['train', '--config=experiments/nope.py'], 'nope.py'),
    (['train', '--config=experiments/digits_cnn.py:bogus'], "line 12: ValueError: Unknown config "
     "argument 'bogus'"),
    (['train', '--config={tmp}/raises.py'], 'raises.py (line 2: ZeroDivisionError'),
    (['train', '--config={tmp}/no_get_config.py'], 'defines no get_config'),
    (['train', '--config={tmp}/returns_dict.py'], 'returned a dict'),
    (['train', '--config={tmp}/syntax_error.py'], 'syntax_error.py (line 1: SyntaxError'),
    # flags and their combinations
    (['train', '--workdir={tmp}/w'], 'No experiment config given'),
    (['train', SMOKE], 'No --workdir given'),
    (['train', SMOKE, 'extra'], 'no positional arguments'),
    (['trian', SMOKE], "Unknown command 'trian'"),
    (['train', SMOKE, '--foo=1'], 'foo'),
    (['eval', '--dry_run'], '`jaxlab eval` does not take --dry_run'),
    (['eval', '--workdir={tmp}', 'extra'], 'eval takes no positional arguments'),
]

# These are found once JAX runs: the model, the mesh, the data, the workdir.
CASES_AFTER_JAX_STARTS = [
    (['train', SMOKE, '--config.model.conv_features=(0,4)', '--dry_run'], 'conv_features'),
    (['train', SMOKE, '--config.model.dropout_rate=1.5', '--dry_run'], 'dropout_rate'),
    (['train', SMOKE, '--config.model.name=cnnn', '--dry_run'], 'Unknown model'),
    (['train', SMOKE, '--config.mesh.data=3', '--dry_run'], 'does not fit'),
    (['train', SMOKE, '--config.data.batch_size=5000'], 'larger than the'),
    (['train', SMOKE, '--config.data.name=npz', '--config.data.path={tmp}/none.npz',
      '--dry_run'], 'none.npz'),
    (['eval', '--workdir={tmp}'], 'not a jaxlab training directory'),
    (['predict', '--workdir={tmp}'], 'predict needs input files'),
    (['train', SMOKE, '--coordinator_address=127.0.0.1:1'], 'needs --num_processes'),
]


def test_the_table_is_large_enough():
  assert len(CASES) + len(CASES_AFTER_JAX_STARTS) >= 30


@pytest.fixture(scope='module')
def config_dir(tmp_path_factory):
  folder = tmp_path_factory.mktemp('configs')
  for name, text in CONFIG_FILES.items():
    (folder / name).write_text(text)
  return folder


def _run(case, tmp):
  args, fragment = case
  args = [arg.replace('{tmp}', str(tmp)) for arg in args]
  if 'train' in args[:1] and not any(a.startswith('--workdir') for a in args) and \
      args != ['train', SMOKE]:
    args.append(f'--workdir={tmp}/run')
  return args, fragment, run_cli(*args, timeout=300)


@pytest.mark.parametrize('cases', [
    pytest.param(CASES, id='before_jax'),
    pytest.param(CASES_AFTER_JAX_STARTS, id='after_jax', marks=pytest.mark.slow)])
def test_every_malformed_input_exits_2_with_one_paragraph(config_dir, cases):
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    outcomes = list(pool.map(lambda case: _run(case, config_dir), cases))
  failures = []
  for args, fragment, result in outcomes:
    errors = [line for line in result.stderr.splitlines() if line.startswith('jaxlab: error:')]
    if (result.returncode != 2 or 'Traceback' in result.stderr or len(errors) != 1
        or fragment not in errors[0]):
      failures.append(f'{args}: exit {result.returncode}, stderr {result.stderr[-600:]!r}')
  assert not failures, '\n'.join(failures)
  written = {p.name for p in (config_dir / 'run').iterdir()} if (config_dir / 'run').exists() \
      else set()
  assert written <= {'jaxlab.lock'}  # no config, checkpoint or metrics for any of them


@pytest.mark.parametrize('name', ['digits_cnn', 'mnist_mlp', 'mnist_cnn', 'cifar10_cnn'])
@pytest.mark.parametrize('arg', [None, 'smoke'])
def test_every_shipped_experiment_is_valid(name, arg):
  config_lib.validate(load_config(name, arg=arg))


def test_every_default_field_has_a_check_that_accepts_its_default():
  defaults, rules = config_lib.defaults(), config_lib.rules()
  assert set(rules) == set(config_lib.flat_keys(defaults))
  for key, check in rules.items():
    node = defaults
    for part in key.split('.'):
      node = node[part]
    assert check(node) is None, key
