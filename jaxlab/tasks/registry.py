"""The task registry: names -> Task classes, or a user's own 'package.module:Class'."""

from jaxlab.config import registry
from jaxlab.tasks import base, classification, detection, language_model, regression, table_inputs
from jaxlab.tasks import speech_recognition
from jaxlab.tasks import seq2seq

REGISTRY = {
    'classification': classification.Classification,
    'language_model': language_model.LanguageModel,
    'regression': regression.Regression,
    'detection': detection.Detection,
    'speech_recognition': speech_recognition.SpeechRecognition,
    'seq2seq': seq2seq.Seq2Seq,
}


def create(config, info, *, compute_dtype, workdir=None):
  """The task that config.task.name names, for a data set described by `info`."""
  task_class = registry.resolve(REGISTRY, config.task.name, 'task', '--config.task.name')
  if task_class is classification.Classification and table_inputs.is_table(info):
    from jaxlab.tasks import table_classification  # rows of a table: two inputs
    task_class = table_classification.TableClassification
  task = task_class(config, info, compute_dtype=compute_dtype, workdir=workdir)
  if not isinstance(task, base.Task):
    from jaxlab.errors import UserError
    raise UserError(f'--config.task.name={config.task.name} is not a jaxlab.tasks.base.Task '
                    'subclass; subclass it (see its docstring for the methods).')
  return task
