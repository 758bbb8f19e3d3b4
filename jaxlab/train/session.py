"""A training run's mutable side: the state, the input, the checkpointer, the writers
and the clocks. The compiled functions live in `programs.py`; the loop in `loop.py`
drives this."""

import dataclasses
import time
from typing import Any

import jax

from jaxlab.checkpoint import manager as checkpoint_lib
from jaxlab import config as config_lib
from jaxlab import data as data_lib
from jaxlab import storage, tasks, tracking
from jaxlab.runtime import background
from jaxlab.perf import memory_fit
from jaxlab.models import modeling
from jaxlab.workdir import plots
from jaxlab.privacy import accounting as privacy
from jaxlab.train import progress
from jaxlab.workdir import writers
from jaxlab.data import pipeline
from jaxlab.data import placement as placement_lib
from jaxlab.errors import UserError
from jaxlab.parallel import mesh as mesh_lib
from jaxlab.train import blocks, inputs, resume
from jaxlab.perf import device_peaks, mfu
from jaxlab.train import programs as programs_lib
from jaxlab.runtime import messages


def is_chief():
  return jax.process_index() == 0


@dataclasses.dataclass
class Session:
  config: Any
  workdir: str
  splits: Any  # data.Splits
  task: Any
  programs: Any  # programs_lib.TrainPrograms
  state: Any
  start_step: int
  steps_per_epoch: int
  checkpointer: Any
  writer: Any
  progress: Any
  input: Any  # inputs.ResidentInput or inputs.StreamedInput
  timings: dict
  meter: Any = None  # mfu.Meter: model FLOPs per step and the mesh's peak
  memory_available: Any = None  # memory_fit.Available: what one device has
  last_eval: dict = None
  tracker: Any = dataclasses.field(default_factory=tracking.NullTracker)  # MLflow, on the chief
  _blocks: dict = dataclasses.field(default_factory=dict)
  _planned_steps: dict = dataclasses.field(default_factory=dict)  # blocks.shapes(): steps of each block shape
  order: Any = None  # jaxlab.data.order.Order: each step's rows, each block's length bucket
  _traced_blocks: list = dataclasses.field(default_factory=list)  # (traced, length, steps): FLOPs
  _resident_test: Any = None

  @property
  def num_steps(self):
    return self.programs.num_steps

  @property
  def host_is_device(self):
    return jax.default_backend() == 'cpu'

  @classmethod
  def create(cls, config, workdir, init_params=None):
    """Restores or initialises the run and compiles its blocks, refusing one that would not
    fit in memory, before anything is written to the workdir."""
    started = time.perf_counter()
    workdir = storage.absolute(workdir)
    tracking.check_installed(config)
    mesh = mesh_lib.create(config.mesh)
    memory = memory_fit.available(mesh)  # read before this run allocates
    mesh_lib.check_batch_size(config.data.batch_size, mesh)
    splits = data_lib.load(config.data, workdir)
    task = tasks.create(config, splits.info, compute_dtype=modeling.compute_dtype(config),
                        workdir=workdir)
    inputs.check_batch_spec(task, splits.info)
    _check_best_metric(config, task)
    num_train = len(splits.train)
    steps_per_epoch = pipeline.training_steps_per_epoch(num_train, config.data.batch_size)
    programs = programs_lib.TrainPrograms(config, task, mesh,
                                          config_lib.total_steps(config, steps_per_epoch),
                                          num_train)
    checkpointer = checkpoint_lib.Checkpointer(
        workdir, keep=config.checkpoint.keep, best_metric=config.checkpoint.best_metric,
        best_mode=config.checkpoint.best_mode, async_save=config.checkpoint.async_save)
    # Restore (and so check the checkpoint against the model) before writing anything.
    state, start_step, position = resume.restore_or_init(config, task, programs, checkpointer,
                                                         init_params)
    # Before the writer's and the plots' background imports, which would slow a CPU
    # peak measurement down.
    peak = device_peaks.mesh_peak(programs.mesh, modeling.compute_dtype(config))
    if is_chief():
      writers.prepare()  # imports while the blocks compile
      tracking.prepare(config)
      if config.plots:
        plots.prepare()
    session = cls(config, workdir, splits, task, programs, state, start_step, steps_per_epoch,
                  checkpointer, writers.NullWriter(), progress=None, input=None,
                  timings=dict(setup=0.0, compile=0.0, train=0.0, eval=0.0, save=0.0,
                               finish=0.0),
                  memory_available=memory, order=blocks.run_order(config, splits, steps_per_epoch))
    session.input = session._make_input(position)
    if start_step < programs.num_steps:
      session.precompile()  # may refuse: a resumed workdir is then left as it was
    # The step's FLOPs from a block traced for compiling, rather than a trace of its own.
    session.meter = meter = mfu.Meter.with_peak(config, task, programs, peak,
                                                traced_blocks=session._traced_blocks)
    session._traced_blocks = None  # their jaxprs are no longer needed
    if is_chief():
      storage.make_dirs(workdir)
      config_lib.save(config, workdir)
      data_lib.save_info(splits.info, workdir)
      session.tracker = tracking.start(config, workdir)
      session.writer = session.tracker.wrap(writers.MetricWriter(workdir))
    session.progress = progress.Progress(programs.num_steps, start_step,
                                         enabled=is_chief() and config.progress,
                                         describe_rate=meter.describe)
    session.timings['setup'] = time.perf_counter() - started - session.timings['compile']
    return session

  def _make_input(self, position):
    placement = placement_lib.choose(self.config.data, self.splits.info, len(self.splits.train),
                                     self.programs.mesh)
    spec = self.task.batch_spec()
    if self.config.privacy.enabled and placement != 'device':
      raise UserError('--config.privacy.enabled=True samples each batch on the devices from the '
                      f'whole training set, but {self.splits.info.name!r} is too large to place '
                      'there (data.placement chose stream). Raise '
                      '--config.data.device_memory_share, use fewer examples '
                      '(--config.data.num_train), or train without privacy.')
    if placement == 'device':
      return inputs.ResidentInput(self.splits.train, spec, epoch_order=self.order,
                                  mesh=self.programs.mesh)
    return inputs.StreamedInput(
        self.splits.train, spec, data_config=self.config.data, seed=self.config.seed,
        batch_size=self.config.data.batch_size, steps_per_epoch=self.steps_per_epoch,
        num_steps=self.num_steps, start_step=self.start_step, block_end=self.block_end,
        mesh=self.programs.mesh, transform=self.splits.train_transform,
        resume_state=position if position and position.get('placement') == 'stream' else None,
        epoch_order=self.order, buckets=self.splits.buckets)

  # --- training -----------------------------------------------------------------

  def block_end(self, step):
    """Blocks end at multiples of steps_per_loop (and at the last step)."""
    return blocks.end(step, self.config, self.num_steps)

  def compiled_block(self, length, bucket=None):
    """The compiled `length`-step block of a length bucket's shapes, compiled once per
    (length, bucket), ahead of time."""
    key = (length, bucket)
    if key not in self._blocks:
      started = time.perf_counter()
      shapes = self.splits.buckets.shapes[bucket] if bucket is not None else None
      if self.input.placement == 'device':
        block = self.programs.resident_block(length, self.steps_per_epoch,
                                             self.config.data.batch_size, shapes)
        args = self.input.block_args(0, length)
      else:
        block = self.programs.streamed_block()
        spec = self.splits.buckets.spec(self.task.batch_spec(), bucket) if shapes else None
        args = (programs_lib.abstract_batches(self.task, length, self.config.data.batch_size,
                                              self.programs.mesh, with_mask=True, spec=spec),)
      traced = block.trace(self.state, *args, *self.programs.teacher_args)
      if self._traced_blocks is not None:
        self._traced_blocks.append((traced, length, self._planned_steps.get(key, 1)))
      self._blocks[key] = traced.lower().compile()
      self.timings['compile'] += time.perf_counter() - started
      self._check_memory(self._blocks[key])
    return self._blocks[key]

  def _check_memory(self, compiled):
    """Refuses a block that clearly would not fit the devices (before its first step)."""
    fit = memory_fit.of_compiled(compiled, self.memory_available)
    warning = fit and memory_fit.check(self.config, self.programs.mesh, fit,
                                       self.input.placement)
    if warning:
      self.log(warning)

  def precompile(self):
    """Compiles every (length, length bucket) of block this run will use up front."""
    if not self._planned_steps:  # once (the loop calls this again)
      self._planned_steps = blocks.shapes(self.order, self.splits.buckets, self.start_step,
                                          self.num_steps, blocks.steps_per_loop(self.config))
      if self.splits.buckets is not None:
        self.log(blocks.describe_buckets(self.splits.buckets, self._planned_steps))
    for length, bucket in sorted(self._planned_steps, key=lambda k: (k[0], k[1] or 0)):
      self.compiled_block(length, bucket)

  def run_block(self, start, end):
    block = self.compiled_block(end - start, self.order.block_bucket(start, end))
    args = self.input.block_args(start, end)
    with jax.transfer_guard('disallow'):  # the loop must not copy data behind our back
      return block(self.state, *args, *self.programs.teacher_args)

  # --- evaluation and checkpoints ----------------------------------------------------

  def evaluate(self, step):
    started = time.perf_counter()
    result = self.task.eval_metrics(self._eval_outputs())
    scalars = {f'eval/{k}': v for k, v in result.items() if isinstance(v, (int, float))}
    extras = {f'eval/{k}': v for k, v in result.items() if not isinstance(v, (int, float))}
    if self.input.placement == 'stream':
      scalars['train/bad_records'] = self.input.bad_records_total()
    self.writer.write(step, scalars, extras)
    self.writer.flush()
    held_out = f' on {self.task.info.test_split}' if self.task.info.test_split else ''
    self.progress.write(f'step {step}: eval{held_out} {self.task.eval_line(result)}')
    self.last_eval = dict(step=step, **result)
    self.timings['eval'] += time.perf_counter() - started
    return scalars

  def _eval_outputs(self):
    """Per-example eval outputs of the test set's real examples, on the host."""
    from jaxlab.inference import evaluate
    eval_batch = mesh_lib.eval_batch_size(self.config, self.programs.mesh)
    test, mesh = self.splits.test, self.programs.mesh
    if placement_lib.choose(self.config.data, self.splits.info, len(test), mesh,
                            per_device=False) == 'device':
      if self._resident_test is None:  # placed once, used at every evaluation
        self._resident_test = evaluate.place_test_set(test, self.task, eval_batch, mesh)
      return evaluate.resident_outputs(self.programs.inference, self.state.variables,
                                       self._resident_test, eval_batch, len(test))
    return evaluate.streamed_outputs(self.programs.inference, self.state.variables, test,
                                     self.task, eval_batch, self.config.data,
                                     self.splits.test_transform)

  def save(self, step, eval_metrics):
    started = time.perf_counter()
    meta = dict(step=int(step), seed=int(self.config.seed), steps_per_epoch=self.steps_per_epoch,
                dataset=self.splits.info.to_json())
    self.checkpointer.save(step, self.state, meta, self.input.position(step),
                           metrics=eval_metrics)
    self.timings['save'] += time.perf_counter() - started

  # --- the end ---------------------------------------------------------------------

  def finish(self):
    self.input.close()
    self.checkpointer.wait()
    self.checkpointer.close()
    self.progress.close()
    self.writer.close()
    if is_chief() and self.config.plots:
      self._draw_plots()

  def _draw_plots(self):
    """Plots are a view of outputs already written (checkpoints, metrics.jsonl): failing
    to draw them is one warning line, never a failed run."""
    try:
      plots.training_curves(writers.read_scalars(self.workdir), self.workdir)
      if self.last_eval and 'confusion_matrix' in self.last_eval:
        info = self.splits.info
        names = info.class_names or tuple(map(str, range(info.num_classes)))
        plots.confusion_matrix(self.last_eval['confusion_matrix'], names, self.workdir,
                               self.last_eval['step'])
    except Exception as error:  # pylint: disable=broad-except
      messages.warn(f'jaxlab: warning: plots not drawn: {background.one_line(error)}')

  def summary(self, status):
    trained = self.current_step() - self.start_step
    return dict(status=status, step=self.current_step(), num_steps=self.num_steps, state=self.state,
                eval=self.last_eval, timings=dict(self.timings), placement=self.input.placement,
                steps_per_second=trained / self.timings['train'] if self.timings['train'] else None,
                throughput=self.meter.summary(trained, self.timings['train'],
                                              wall_seconds=sum(self.timings.values())),
                privacy=self.privacy_report(self.current_step()),
                test_split=self.task.info.test_split)

  def privacy_report(self, step):
    """ε spent by `step` steps and how it was accounted (None without privacy)."""
    return privacy.report(self.config, len(self.splits.train), step)

  def privacy_scalars(self, step):
    report = self.privacy_report(step)
    return {} if report is None else {'train/epsilon': report['epsilon']}

  def current_step(self):
    return int(jax.device_get(self.state.step))

  def log(self, message, always=False):
    if always or is_chief():
      messages.say(message)


def _check_best_metric(config, task):
  metric = config.checkpoint.best_metric
  if metric and metric.split('/', 1)[1] not in task.metric_names:
    raise UserError(f'--config.checkpoint.best_metric={metric} is not a metric of the task '
                    f'{config.task.name!r}; use one of '
                    f'{", ".join("eval/" + m for m in task.metric_names)} (or \'\' for none).')
