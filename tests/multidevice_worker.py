"""Runs a scenario on 8 fake CPU devices and prints its result as JSON (last line).

Started by tests/test_parallel.py in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8 (the flag must precede JAX's start).
"""

import json
import sys

import jax
import numpy as np

from tests.conftest import load_config, read_metrics

LAYOUTS = {
    'single': dict(data=1, fsdp=1, tensor=1),
    'dp': dict(data=8, fsdp=1, tensor=1),
    'fsdp': dict(data=1, fsdp=8, tensor=1),
    'dp_fsdp': dict(data=2, fsdp=4, tensor=1),
    'dp_tp': dict(data=4, fsdp=1, tensor=2),
    'dp_tp_4': dict(data=2, fsdp=1, tensor=2),  # a mesh over the first 4 of the 8 devices
    'dp_fsdp_tp': dict(data=2, fsdp=2, tensor=2),
}


def _config(name, layout, **overrides):
  config = load_config(name, data__name='synthetic', **overrides)
  for axis, size in LAYOUTS[layout].items():
    config.mesh[axis] = size
  return config


def losses(workdir, name, layouts):
  """Loss curve of the same config under each layout."""
  from jaxlab.train import loop
  out = {}
  for layout in layouts:
    config = _config(name, layout, num_steps=24, log_every_steps=4, eval_every_steps=0,
                     checkpoint_every_steps=0)
    loop.run(config, f'{workdir}/{name}-{layout}')
    out[layout] = [r['train/loss'] for r in read_metrics(f'{workdir}/{name}-{layout}')
                   if 'train/loss' in r]
  return out


def tables(name, layouts):
  from jaxlab.perf import dry_run
  return {layout: dry_run.analyse(_config(name, layout))['sharding_table'] for layout in layouts}


def reshard(workdir, name, save_layout, restore_layouts):
  """Trains under one layout, restores the checkpoint under others; returns whether
  every restored parameter equals the saved one and how each is sharded."""
  from jaxlab.checkpoint import manager as checkpoint_lib
  from jaxlab import tasks
  from jaxlab.models import modeling
  from jaxlab.data import KNOWN_SHAPES, image_info
  from jaxlab.train import loop, programs as programs_lib
  from jaxlab.parallel import mesh as mesh_lib
  save_config = _config(name, save_layout, num_steps=8, checkpoint_every_steps=8,
                        eval_every_steps=0)
  loop.run(save_config, f'{workdir}/saved')
  reference = None
  result = {}
  known = KNOWN_SHAPES[save_config.data.synthetic_like]
  info = image_info('synthetic', known['image_shape'], known['num_classes'])
  for layout in [save_layout, *restore_layouts]:
    config = _config(name, layout, num_steps=8)
    mesh = mesh_lib.create(config.mesh)
    task = tasks.create(config, info, compute_dtype=modeling.compute_dtype(config))
    programs = programs_lib.TrainPrograms(config, task, mesh, num_steps=8)
    checkpointer = checkpoint_lib.Checkpointer(f'{workdir}/saved', read_only=True)
    state, _ = checkpointer.restore_variables(8, programs.inference.variables_layout)
    params = jax.tree.map(np.asarray, jax.device_get(state.params))
    if reference is None:
      reference = params
    equal = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(reference),
                                                     jax.tree.leaves(params)))
    specs = {'/'.join(str(getattr(k, 'key', k)) for k in path): str(leaf.sharding.spec)
             for path, leaf in jax.tree_util.tree_leaves_with_path(state.params)}
    devices = len(jax.tree.leaves(state.params)[0].sharding.device_set)
    result[layout] = dict(equal=equal, specs=specs, devices=devices)
  return result


def language_model(workdir, layouts, table_layouts):
  """The LM smoke config (experiments/lm1b_lm.py:smoke: scanned layers, GQA, SentencePiece)
  under each layout: its loss curve, and the dry run's sharding table."""
  import shutil
  from jaxlab.perf import dry_run
  from jaxlab.train import loop

  def config(layout, **overrides):
    config = load_config('lm1b_lm', data__cache_dir=f'{workdir}/cache', **overrides)
    for axis, size in LAYOUTS[layout].items():
      config.mesh[axis] = size
    return config

  out = {}
  for index, layout in enumerate(layouts):
    run_dir = f'{workdir}/lm-{layout}'
    if index:  # one tokenizer for all: the first run's (train_or_load reuses it)
      shutil.os.makedirs(run_dir)
      shutil.copy(f'{workdir}/lm-{layouts[0]}/tokenizer.model', run_dir)
    loop.run(config(layout, num_steps=12, steps_per_loop=4, log_every_steps=4,
                    eval_every_steps=0, checkpoint_every_steps=0, plots=False), run_dir)
    out[layout] = [r['train/loss'] for r in read_metrics(run_dir) if 'train/loss' in r]
  tables = {layout: dry_run.analyse(config(layout))['sharding_table'] for layout in table_layouts}
  return dict(losses=out, tables=tables)


def dense_input_grads(layouts):
  """Max |difference| from one device of d loss / d x, for x split as jaxlab splits a
  batch (features over 'tensor', as conv features are) entering a dense layer whose
  kernels are split by the default rules: the pattern of the speech CNN's classifier."""
  import jax.numpy as jnp
  from jax.sharding import NamedSharding, PartitionSpec as P
  from jaxlab.parallel import mesh as mesh_lib, sharding
  keys = jax.random.split(jax.random.key(0), 4)
  x = jax.random.normal(keys[0], (32, 16))
  kernels = dict(dense=jax.random.normal(keys[1], (16, 16)),
                 head=jax.random.normal(keys[2], (16, 10)))
  axes = dict(dense=('embed', 'mlp'), head=('mlp', 'classes'))
  upstream = jax.random.normal(keys[3], (32, 10))

  def loss(x, kernels, x_sharding):
    x = x if x_sharding is None else jax.lax.with_sharding_constraint(x, x_sharding)
    return jnp.sum(jax.nn.relu(x @ kernels['dense']) @ kernels['head'] * upstream)

  reference = np.asarray(jax.jit(jax.grad(loss), static_argnums=2)(x, kernels, None))
  out = {}
  for layout in layouts:
    mesh = mesh_lib.create(LAYOUTS[layout])
    x_sharding = NamedSharding(mesh, P(sharding.batch_sharding(mesh).spec[0], 'tensor'))
    placed = {name: jax.device_put(k, NamedSharding(mesh, sharding.mesh_spec(
        axes[name], k.shape, mesh, sharding.DEFAULT_RULES))) for name, k in kernels.items()}
    grads = jax.jit(jax.grad(loss), static_argnums=2)(jax.device_put(x, x_sharding), placed,
                                                       x_sharding)
    out[layout] = float(np.abs(np.asarray(grads) - reference).max())
  return dict(differences=out, scale=float(np.abs(reference).max()))


if __name__ == '__main__':
  scenario, args = sys.argv[1], json.loads(sys.argv[2])
  print(json.dumps(globals()[scenario](**args)))
