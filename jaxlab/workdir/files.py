"""The names of everything jaxlab keeps in a workdir, in one place.

  config.json             the resolved experiment config (jaxlab.config)
  dataset_info.json       what an example holds, classes, tokenizer (jaxlab.data)
  tokenizer.model         a SentencePiece tokenizer trained for the run, if any
  metrics.jsonl           train and eval records (jaxlab.workdir.writers)
  tensorboard/            the same scalars as TensorBoard events
  checkpoints/<step>/     Orbax checkpoints (jaxlab.checkpoint.manager)
  checkpoints_damaged/    damaged steps set aside, never deleted
  eval_<step>.json        what `jaxlab eval` measured
  quantized_<mode>/       an int8 copy of the model, itself a workdir (jaxlab.inference.quantize)
  quantization.json       in a quantized workdir: how it was quantized
  quantize_<mode>.json    float vs int8: metrics, bytes of weights, inference time
  explanations/           `jaxlab explain`'s overlays and summary (jaxlab.inference.attributions)
  training_curves.png, confusion_matrix.png
  jaxlab.lock             held by the run training in it (jaxlab.workdir.lock)
  tracking.json           the MLflow run it logs to, continued on resume (jaxlab.tracking)
"""

import posixpath

CONFIG = 'config.json'
DATASET_INFO = 'dataset_info.json'
TOKENIZER = 'tokenizer.model'
METRICS = 'metrics.jsonl'
TENSORBOARD = 'tensorboard'
CHECKPOINTS = 'checkpoints'
CHECKPOINTS_DAMAGED = 'checkpoints_damaged'
TRAINING_CURVES = 'training_curves.png'
CONFUSION_MATRIX = 'confusion_matrix.png'
LOCK = 'jaxlab.lock'
QUANTIZATION = 'quantization.json'
EXPLANATIONS = 'explanations'
TRACKING = 'tracking.json'


def eval_result(step):
  return f'eval_{step}.json'


def worst_examples(step, extension):
  """The worst-scoring test examples of `jaxlab eval` (tasks with sequence outputs), in the
  task's format: 'jsonl' (speech recognition) or 'txt' (seq2seq's readable report)."""
  return f'eval_{step}_worst.{extension}'


def quantize_report(mode):
  return f'quantize_{mode}.json'


def path(workdir, name):
  return posixpath.join(workdir, name)
