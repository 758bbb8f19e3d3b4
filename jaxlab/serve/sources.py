"""Where the server's model comes from: a training workdir (a checkpoint, run through
the run's compiled predict program) or an export directory (`jaxlab export`'s
serialized model). Both give the same small interface:

  source(batch) -> outputs     numpy dicts with a leading example axis (any size)
  source.task                  the run's task: input names, `predictions`, tokenizer
  source.input_spec            {input: (shape of one example, numpy dtype)}: the task's
                               predict_spec (images as float32 in the raw pixel range)
  source.signature             JSON-able description for GET /v1/model
  source.step                  the checkpoint's step
  source.multiple              batch sizes must be multiples of this (data shards)
  source.compilations()        how many programs the model has compiled (None: unknown)
  source.sampler               (Sampler, tokenizer) for /v1/generate, or None;
  source.no_sampler_reason     why not, when None
"""

import jax
import numpy as np

from jaxlab import storage
from jaxlab.errors import UserError


def check_choice(workdir, export):
  if bool(workdir) == bool(export):
    raise UserError('serve needs exactly one model: --workdir=DIR (a training run) or '
                    '--export=DIR (from `jaxlab export`).')


def open_source(*, workdir=None, export=None, checkpoint='best'):
  check_choice(workdir, export)
  return WorkdirSource(workdir, checkpoint) if workdir else ExportSource(export)


def scalar_metrics(metrics):
  """The numbers of a checkpoint's eval metrics (no confusion matrix, no step)."""
  return {k: v for k, v in (metrics or {}).items()
          if isinstance(v, (int, float)) and not isinstance(v, bool) and k != 'step'}


def describe(task, step, metrics):
  """A signature of the task's inputs, in the shape of `jaxlab export`'s."""
  info = task.info
  return dict(
      inputs={k: dict(shape=[None, *shape], dtype=str(dtype))
              for k, (shape, dtype) in task.predict_spec().items()},
      task=type(task).__name__, dataset=info.name, checkpoint_step=step,
      class_names=list(info.class_names), num_classes=info.num_classes,
      preprocessing=dict(pixel_max=info.pixel_max) if 'image' in info.features else
      dict(tokenizer=info.tokenizer, sample_rate=info.sample_rate or None),
      eval_metrics=metrics)


class WorkdirSource:
  """A checkpoint of a training workdir, run by the run's compiled predict program."""

  def __init__(self, workdir, checkpoint):
    from jaxlab.export import signature as export
    from jaxlab.inference import trained_run as inference
    from jaxlab.parallel import mesh as mesh_lib, sharding
    self.run = inference.load(workdir, checkpoint)
    self.task, self.step = self.run.task, self.run.step
    self.input_spec = self.task.predict_spec()
    self.multiple = mesh_lib.data_shards(self.run.programs.mesh)
    self._predict = self.run.programs.predict()
    self._replicated = sharding.replicated(self.run.programs.mesh)
    metrics = scalar_metrics(export.checkpoint_metrics(self.run.workdir, self.step))
    self.signature = dict(describe(self.task, self.step, metrics),
                          source=dict(workdir=self.run.workdir))
    self.sampler, self.no_sampler_reason = self._sampler()

  def __call__(self, batch):
    from jaxlab.data import pipeline
    placed = {k: pipeline.place(v, self._replicated) for k, v in batch.items()}
    return jax.device_get(self._predict(self.run.variables, placed))

  def compilations(self):
    return self._predict._cache_size()  # pylint: disable=protected-access

  def _sampler(self):
    from jaxlab.inference import lm_sampler as sample
    from jaxlab.tasks import language_model
    if not isinstance(self.task, language_model.LanguageModel):
      return None, (f'this server holds a {type(self.task).__name__} model; /v1/generate '
                    'needs a language model (use /v1/predict)')
    try:
      return sample.sampler_of(self.run), None
    except UserError as error:
      return None, str(error)


class ExportSource:
  """An export directory: `jaxlab.export.exported_model.load(DIR)`, with the run's task (its
  config, data set info and tokenizer are copied into DIR) to read inputs and write
  predictions."""

  def __init__(self, directory):
    from jaxlab import config as config_lib, data, tasks
    from jaxlab.export import exported_model
    from jaxlab.models import modeling
    directory = storage.absolute(directory)
    self.model = exported_model.load(directory)
    config = config_lib.load_from_workdir(directory)
    self.task = tasks.create(config, data.load_info(directory),
                             compute_dtype=modeling.compute_dtype(config), workdir=directory)
    exported = self.model.signature
    self.input_spec = self.task.predict_spec()  # the trained shapes (an export takes them)
    self.multiple = 1
    self.step = exported['checkpoint_step']
    metrics = scalar_metrics(exported['metrics'])
    shown = {k: v for k, v in exported.items() if k != 'weights'}  # one entry per array
    self.signature = dict(describe(self.task, self.step, metrics), exported=shown,
                          source=dict(export=directory))
    self.sampler = None
    self.no_sampler_reason = ('an export holds the forward pass only; serve the training run '
                              'with --workdir=DIR for /v1/generate')
    self._shapes = set()

  def __call__(self, batch):
    self._shapes.add(len(next(iter(batch.values()))))
    outputs = self.model({k: np.asarray(v) for k, v in batch.items()})
    return {k: np.asarray(v) for k, v in outputs.items()}

  def compilations(self):
    return len(self._shapes)  # batch sizes seen: the export compiles once per size
