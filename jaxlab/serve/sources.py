"""Where the server's model comes from: a training workdir (a checkpoint, run through
the run's compiled predict program) or an export directory (`jaxlab export`'s
serialized model). Both give the same small interface:

  source(batch) -> outputs     numpy dicts with a leading example axis (any size)
  source.task                  the run's task: input names, `predictions`, tokenizer
  source.input_spec            {input name: (shape of one example, numpy dtype)}
  source.signature             JSON-able description for GET /v1/model
  source.step                  the checkpoint's step
  source.multiple              batch sizes must be multiples of this (data shards)
  source.compilations()        how many programs the model has compiled (None: unknown)
  source.sampler               (Sampler, tokenizer) for /v1/generate, or None;
  source.no_sampler_reason     why not, when None
"""

import json

import jax
import numpy as np

from jaxlab import storage, workdir_files
from jaxlab.errors import UserError

NOT_INPUTS = ('label', 'mask')


def open_source(*, workdir=None, export=None, checkpoint='best'):
  if bool(workdir) == bool(export):
    raise UserError('serve needs exactly one model: --workdir=DIR (a training run) or '
                    '--export=DIR (from `jaxlab export`).')
  return WorkdirSource(workdir, checkpoint) if workdir else ExportSource(export)


def input_spec(task):
  """{input: (shape, dtype)} of the batches the server feeds the model. Images go in as
  float32 in the raw pixel range, as `jaxlab predict` feeds them, so JSON arrays and image
  files share one compiled program per batch size."""
  return {k: (shape, np.dtype(np.float32) if k == 'image' else dtype)
          for k, (shape, dtype) in task.batch_spec().items() if k not in NOT_INPUTS}


def eval_metrics_at(directory, step):
  """The scalar eval metrics that training logged at `step` ({} if none)."""
  path = workdir_files.path(directory, workdir_files.METRICS)
  if not storage.exists(path):
    return {}
  found = {}
  for line in storage.read_lines(path):
    record = json.loads(line) if line.strip() else {}
    if record.get('step') == step and any(k.startswith('eval/') for k in record):
      found = {k[len('eval/'):]: v for k, v in record.items()
               if k.startswith('eval/') and isinstance(v, (int, float))}
  return found


def describe(task, step, metrics):
  """A signature of the task's inputs, in the shape of `jaxlab export`'s."""
  info = task.info
  return dict(
      inputs={k: dict(shape=[None, *shape], dtype=str(dtype))
              for k, (shape, dtype) in input_spec(task).items()},
      task=type(task).__name__, dataset=info.name, checkpoint_step=step,
      class_names=list(info.class_names), num_classes=info.num_classes,
      preprocessing=dict(pixel_max=info.pixel_max) if 'image' in info.features else
      dict(tokenizer=info.tokenizer, sample_rate=info.sample_rate or None),
      eval_metrics=metrics)


class WorkdirSource:
  """A checkpoint of a training workdir, run by the run's compiled predict program."""

  def __init__(self, workdir, checkpoint):
    from jaxlab import inference
    from jaxlab.parallel import mesh as mesh_lib, sharding
    self.run = inference.load(workdir, checkpoint)
    self.task, self.step = self.run.task, self.run.step
    self.input_spec = input_spec(self.task)
    self.multiple = mesh_lib.data_shards(self.run.programs.mesh)
    self._predict = self.run.programs.predict()
    self._replicated = sharding.replicated(self.run.programs.mesh)
    self.signature = dict(describe(self.task, self.step,
                                   eval_metrics_at(self.run.workdir, self.step)),
                          source=dict(workdir=self.run.workdir))
    self.sampler, self.no_sampler_reason = self._sampler()

  def __call__(self, batch):
    from jaxlab.data import pipeline
    placed = {k: pipeline.place(v, self._replicated) for k, v in batch.items()}
    return jax.device_get(self._predict(self.run.variables, placed))

  def compilations(self):
    return self._predict._cache_size()  # pylint: disable=protected-access

  def _sampler(self):
    from jaxlab import sample
    from jaxlab.tasks import language_model
    if not isinstance(self.task, language_model.LanguageModel):
      return None, (f'this server holds a {type(self.task).__name__} model; /v1/generate '
                    'needs a language model (use /v1/predict)')
    try:
      return sample.sampler_of(self.run), None
    except UserError as error:
      return None, str(error)


class ExportSource:
  """An export directory: `jaxlab.exported_model.load(DIR)`, with the run's task (its
  config, data set info and tokenizer are copied into DIR) to read inputs and write
  predictions."""

  def __init__(self, directory):
    from jaxlab import config as config_lib, data, modeling, tasks
    try:
      from jaxlab import exported_model
    except ImportError:
      raise UserError('This jaxlab has no `jaxlab export` (jaxlab.exported_model is missing); '
                      'serve a training run with --workdir=DIR instead.') from None
    directory = storage.absolute(directory)
    self.model = exported_model.load(directory)
    config = config_lib.load_from_workdir(directory)
    self.task = tasks.create(config, data.load_info(directory),
                             compute_dtype=modeling.compute_dtype(config), workdir=directory)
    exported = dict(self.model.signature)
    # The trained shapes (the export takes them, and maybe more) in the export's dtypes.
    self.input_spec = {name: (shape, np.dtype(exported['inputs'][name]['dtype']))
                       for name, (shape, _) in input_spec(self.task).items()}
    self.multiple = 1
    self.step = exported['checkpoint_step']
    metrics = {k: v for k, v in (exported.get('metrics') or {}).items()
               if isinstance(v, (int, float)) and k != 'step'}
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
