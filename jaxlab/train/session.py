"""Everything one training run holds: data on the devices, the state, the compiled
functions, the checkpointer and the writers. The loop in `loop.py` drives it."""

import dataclasses
import functools
import json
import posixpath
import sys
import time
from typing import Any

import jax
import numpy as np

from jaxlab import checkpoint as checkpoint_lib
from jaxlab import config as config_lib
from jaxlab import data as data_lib
from jaxlab import metrics as metrics_lib
from jaxlab import plots, progress, storage, writers
from jaxlab.data import pipeline
from jaxlab.errors import UserError
from jaxlab.parallel import mesh as mesh_lib
from jaxlab.parallel import sharding
from jaxlab.train import optimizer, state as state_lib, step as step_lib

DATASET_INFO_FILE = 'dataset_info.json'


def is_chief():
  return jax.process_index() == 0


def save_dataset_info(info, workdir):
  storage.write_text(posixpath.join(workdir, DATASET_INFO_FILE),
                     json.dumps(dataclasses.asdict(info), indent=2) + '\n')


def load_dataset_info(workdir):
  record = json.loads(storage.read_text(posixpath.join(workdir, DATASET_INFO_FILE)))
  record['image_shape'] = tuple(record['image_shape'])
  record['class_names'] = tuple(record['class_names'])
  return data_lib.DatasetInfo(**record)


def check_batch_size(batch_size, mesh, what='--config.data.batch_size'):
  shards = mesh.shape['data'] * mesh.shape['fsdp']
  if batch_size % shards:
    raise UserError(f'{what}={batch_size} cannot be split evenly over the {shards} '
                    f'data-parallel devices of the mesh {dict(mesh.shape)}; use a multiple '
                    f'of {shards}.')


def eval_batch_size(config, mesh):
  """The eval batch, rounded up to split evenly over the devices (padding is masked)."""
  shards = mesh.shape['data'] * mesh.shape['fsdp']
  batch = config.data.get('eval_batch_size') or config.data.batch_size
  return -(-batch // shards) * shards


@dataclasses.dataclass(frozen=True)
class Model:
  """What inference needs: layout, static model, step config; built from a config."""
  layout: Any
  step_config: Any
  mesh: Any
  num_steps: int

  @classmethod
  def create(cls, config, info, steps_per_epoch, mesh):
    num_steps = config_lib.total_steps(config, steps_per_epoch)
    tx, learning_rate = optimizer.create(config.optimizer, num_steps)
    model_def, _ = state_lib.model_def(config, info)
    state_layout = state_lib.layout(config, info, tx, mesh)
    step_config = step_lib.StepConfig(
        model=model_def, tx=tx, learning_rate=learning_rate, pixel_max=info.pixel_max,
        compute_dtype=state_lib.compute_dtype(config),
        augment=tuple(config.data.get('augment', ())),
        grad_accum_steps=int(config.get('grad_accum_steps', 1)),
        remat=config.get('remat', 'none'), batch_sharding=sharding.batch_sharding(mesh))
    if config.data.batch_size % step_config.grad_accum_steps:
      raise UserError(f'--config.data.batch_size={config.data.batch_size} is not divisible by '
                      f'--config.grad_accum_steps={step_config.grad_accum_steps}.')
    return cls(state_layout, step_config, mesh, num_steps)

  def block_function(self, length, steps_per_epoch, batch_size):
    """The jitted `length`-step training block (state donated)."""
    replicated = sharding.replicated(self.mesh)
    by_example = sharding.batch_sharding(self.mesh)
    return jax.jit(
        functools.partial(step_lib.train_block, block_len=length, steps_per_epoch=steps_per_epoch,
                          batch_size=batch_size, step_config=self.step_config),
        in_shardings=(self.layout.shardings, replicated, by_example, by_example),
        out_shardings=(self.layout.shardings, replicated), donate_argnums=0)

  def step_flops(self, batch_size, image_shape):
    """XLA's FLOP count of one train step on the whole global batch (before partitioning)."""
    images = jax.ShapeDtypeStruct((batch_size, *image_shape), np.uint8)
    labels = jax.ShapeDtypeStruct((batch_size,), np.int32)
    lowered = jax.jit(functools.partial(step_lib.train_step, step_config=self.step_config)).lower(
        self.layout.shapes, images, labels)
    cost = lowered.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get('flops', 0.0)) if cost else None

  def eval_function(self, eval_batch_size):
    replicated = sharding.replicated(self.mesh)
    return jax.jit(
        functools.partial(step_lib.eval_outputs, eval_batch_size=eval_batch_size,
                          step_config=self.step_config),
        in_shardings=(self.layout.shardings, replicated, replicated),
        out_shardings=replicated)


@dataclasses.dataclass
class Session:
  config: Any
  workdir: str
  dataset: Any
  model: Model
  state: Any
  start_step: int
  steps_per_epoch: int
  checkpointer: Any
  writer: Any
  progress: Any
  device_data: dict
  permutations: Any
  timings: dict
  last_eval: dict = None
  _blocks: dict = dataclasses.field(default_factory=dict)
  _evaluate: Any = None

  @property
  def num_steps(self):
    return self.model.num_steps

  @property
  def host_is_device(self):
    return jax.default_backend() == 'cpu'

  @classmethod
  def create(cls, config, workdir, init_params=None):
    started = time.perf_counter()
    workdir = storage.absolute(workdir)
    mesh = mesh_lib.create(config.mesh)
    check_batch_size(config.data.batch_size, mesh)
    # The training set is split over the data-parallel devices (each holds 1/D of it,
    # and each process reads only its devices' rows); XLA gathers each batch across them.
    shards = mesh.shape['data'] * mesh.shape['fsdp']
    by_example = sharding.batch_sharding(mesh)
    padded = lambda n: -(-n // shards) * shards  # padding rows are never drawn
    dataset = data_lib.load(config.data,
                            lambda n: pipeline.local_row_range(by_example, padded(n)))
    if jax.process_count() > 1:
      print(f'process {jax.process_index()}: training rows {dataset.train_offset} to '
            f'{dataset.train_offset + len(dataset.train_labels)} of {dataset.num_train}',
            flush=True)
    steps_per_epoch = pipeline.steps_per_epoch(dataset.num_train, config.data.batch_size)
    if steps_per_epoch == 0:
      raise UserError(f'--config.data.batch_size={config.data.batch_size} is larger than the '
                      f'{dataset.num_train} training examples; lower it.')
    model = Model.create(config, dataset.info, steps_per_epoch, mesh)
    checkpointer = checkpoint_lib.Checkpointer(
        workdir, keep=config.checkpoint.keep, best_metric=config.checkpoint.best_metric,
        best_mode=config.checkpoint.best_mode, async_save=config.checkpoint.async_save)
    # Restore (and so check the checkpoint against the model) before writing anything.
    state, start_step = _restore_or_init(config, dataset.info, model, checkpointer, init_params)
    if is_chief():
      storage.make_dirs(workdir)
      config_lib.save(config, workdir)
      save_dataset_info(dataset.info, workdir)
    replicated = sharding.replicated(mesh)
    eval_batch = eval_batch_size(config, mesh)
    num_rows = padded(dataset.num_train)
    device_data = dict(
        train_images=pipeline.place_rows(dataset.train_images, dataset.train_offset, num_rows,
                                         by_example),
        train_labels=pipeline.place_rows(dataset.train_labels, dataset.train_offset, num_rows,
                                         by_example),
        test_images=pipeline.place(pipeline.pad_to_multiple(dataset.test_images, eval_batch),
                                   replicated),
        test_labels=pipeline.place(pipeline.pad_to_multiple(dataset.test_labels, eval_batch),
                                   replicated))
    permutations = pipeline.EpochPermutations(
        state_lib.seed_keys(config.seed)['data'], dataset.num_train, steps_per_epoch,
        replicated)
    writer = writers.MetricWriter(workdir) if is_chief() else writers.NullWriter()
    if is_chief() and config.get('plots', True):
      plots.prepare()  # imports matplotlib while the run compiles and trains
    bar = progress.Progress(model.num_steps, start_step, enabled=is_chief()
                            and config.get('progress', True))
    session = cls(config, workdir, dataset, model, state, start_step, steps_per_epoch,
                  checkpointer, writer, bar, device_data, permutations,
                  timings=dict(setup=time.perf_counter() - started, compile=0.0, eval=0.0,
                               save=0.0, train=0.0))
    session._evaluate = model.eval_function(eval_batch)
    return session

  # --- training -----------------------------------------------------------------

  def block_end(self, step):
    """Blocks end at multiples of steps_per_loop (and at the last step)."""
    steps_per_loop = max(1, int(self.config.steps_per_loop))
    return min((step // steps_per_loop + 1) * steps_per_loop, self.num_steps)

  def compiled_block(self, length):
    """The compiled `length`-step block, compiled once per length (ahead of time)."""
    if length not in self._blocks:
      started = time.perf_counter()
      block = self.model.block_function(length, self.steps_per_epoch,
                                        self.config.data.batch_size)
      perms = self.permutations.for_block(0, length)
      self._blocks[length] = block.lower(self.state, perms, self.device_data['train_images'],
                                         self.device_data['train_labels']).compile()
      self.timings['compile'] += time.perf_counter() - started
    return self._blocks[length]

  def precompile(self):
    """Compiles every block length this run will use (first, full, last) up front."""
    steps_per_loop = max(1, int(self.config.steps_per_loop))
    first_end = self.block_end(self.start_step)
    lengths = {first_end - self.start_step}
    if first_end < self.num_steps:
      last_start = max(first_end, (self.num_steps - 1) // steps_per_loop * steps_per_loop)
      lengths.add(self.num_steps - last_start)
      if last_start > first_end:
        lengths.add(steps_per_loop)
    for length in lengths:
      self.compiled_block(length)

  def run_block(self, start, end):
    block = self.compiled_block(end - start)
    perms = self.permutations.for_block(start, end - start)
    with jax.transfer_guard('disallow'):  # the loop must not copy data behind our back
      return block(self.state, perms, self.device_data['train_images'],
                   self.device_data['train_labels'])

  # --- evaluation and checkpoints ----------------------------------------------------

  def evaluate(self, step):
    started = time.perf_counter()
    predictions, losses = jax.device_get(self._evaluate(
        self.state, self.device_data['test_images'], self.device_data['test_labels']))
    count = len(self.dataset.test_labels)
    result = metrics_lib.classification_metrics(
        self.dataset.test_labels, predictions[:count], self.dataset.info.num_classes)
    result['loss'] = float(np.mean(losses[:count]))
    scalars = {f'eval/{k}': v for k, v in result.items() if k != 'confusion_matrix'}
    self.writer.write(step, scalars, {'eval/confusion_matrix': result['confusion_matrix']})
    self.writer.flush()
    self.progress.write(f'step {step}: eval loss {result["loss"]:.4f}, accuracy '
                        f'{result["accuracy"]:.4f}, f1 {result["f1"]:.4f}')
    self.last_eval = dict(step=step, **result)
    self.timings['eval'] += time.perf_counter() - started
    return scalars

  def save(self, step, eval_metrics):
    started = time.perf_counter()
    meta = dict(step=int(step), seed=int(self.config.seed), steps_per_epoch=self.steps_per_epoch,
                dataset=dataclasses.asdict(self.dataset.info))
    self.checkpointer.save(step, self.state, meta, metrics=eval_metrics)
    self.timings['save'] += time.perf_counter() - started

  # --- the end ---------------------------------------------------------------------

  def finish(self):
    self.checkpointer.wait()
    self.checkpointer.close()
    self.progress.close()
    self.writer.close()
    if is_chief() and self.config.get('plots', True):
      plots.training_curves(writers.read_records(self.workdir), self.workdir)
      if self.last_eval:
        names = self.dataset.info.class_names or tuple(map(str, range(
            self.dataset.info.num_classes)))
        plots.confusion_matrix(self.last_eval['confusion_matrix'], names, self.workdir,
                               self.last_eval['step'])

  def summary(self, status):
    trained = self.current_step() - self.start_step
    return dict(status=status, step=self.current_step(), num_steps=self.num_steps, state=self.state,
                eval=self.last_eval, timings=dict(self.timings),
                steps_per_second=trained / self.timings['train'] if self.timings['train'] else None)

  def current_step(self):
    return int(jax.device_get(self.state.step))

  def log(self, message, always=False):
    if always or is_chief():
      print(message, flush=True)


def _restore_or_init(config, info, model, checkpointer, init_params=None):
  """The newest intact checkpoint's state, or a fresh one. Damaged steps are set aside
  with a warning, so a run always resumes from verified data."""
  for step in sorted(checkpointer.all_steps(), reverse=True):
    try:
      state, _ = checkpointer.restore(step, model.layout)
    except checkpoint_lib.DamagedCheckpoint as error:
      moved = checkpointer.set_aside(step)
      if is_chief():
        print(f'jaxlab: warning: {error}; moved it to {moved} and resuming from the newest '
              'intact checkpoint instead.', file=sys.stderr, flush=True)
      continue
    if is_chief():
      print(f'Resuming from the checkpoint at step {step}.', flush=True)
    return state, step
  state = state_lib.create(config, info, model.step_config.tx, model.layout)
  if init_params is not None:
    params = jax.device_put(jax.tree.map(np.asarray, init_params),
                            model.layout.shardings.params)
    state = state.replace(params=params)
  return state, 0
