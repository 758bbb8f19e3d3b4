"""The exported program: a trained model's serving function with symbolic shapes, for
`jaxlab export` (a trained model as a file that runs without jaxlab).

  stablehlo   the eval-mode forward pass serialized with `jax.export` (any batch size;
              a language model also any sequence length up to its max_len), for each
              platform asked for, with its weights beside it as an .npz argument.
              `jaxlab/export/exported_model.py` (copied in as load_exported.py) runs it with
              jax and numpy alone.
  savedmodel  a TensorFlow SavedModel of the same function (jax2tf), weights as TF
              variables, tag `serve`, signature `serving_default`: for TF Serving and
              Vertex AI. Needs TensorFlow (`pip install 'jaxlab[savedmodel]'`).

Both folders hold `signature.json` (inputs, outputs, preprocessing, classes, the
checkpoint's metrics) and copies of the workdir's config.json, dataset_info.json and
tokenizer, so that `jaxlab.config.load_from_workdir`, `jaxlab.data.load_info` and
`jaxlab.tasks.create` read the folder as they read a workdir.
"""

import dataclasses
import os

import jax
import numpy as np
from jax import export as jax_export

from jaxlab import storage
from jaxlab.inference import forward
from jaxlab.errors import UserError
from jaxlab.tasks import language_model
from jaxlab.runtime import messages

FORMATS = ('stablehlo', 'savedmodel')
PLATFORMS = ('cpu', 'cuda', 'rocm', 'tpu')
FORMAT_VERSION = 1
SIGNATURE = 'signature.json'
MODEL_FILE = 'model.jax_exported'
WEIGHTS_FILE = 'weights.npz'
LOADER_FILE = 'load_exported.py'
SAVEDMODEL_TAG = 'serve'
SAVEDMODEL_SIGNATURE = 'serving_default'
COMPATIBILITY = ('jax.export guarantees that an artifact stays loadable by newer JAX '
                 'versions for about six months after it was exported; re-export after that.')


def check_format(fmt):
  if fmt not in FORMATS:
    raise UserError(f'Unknown --format={fmt}; use stablehlo (jax.export, runs with jax alone) or '
                    'savedmodel (TensorFlow SavedModel, for TF Serving and Vertex AI).')
  return fmt


def parse_platforms(text):
  """('cpu', ...) from 'cpu,cuda'; None: the CPU plus this machine's backend."""
  if text is None:
    return tuple(dict.fromkeys(('cpu', jax_export.default_export_platform())))
  platforms = tuple(dict.fromkeys(p.strip() for p in text.split(',') if p.strip()))
  unknown = [p for p in platforms if p not in PLATFORMS]
  if unknown or not platforms:
    raise UserError(f'Unknown --platforms={text}; give a comma-separated list of '
                    f'{", ".join(PLATFORMS)}, e.g. --platforms=cpu,cuda.')
  return platforms


def check_out(out):
  if not out:
    raise UserError('export needs a folder to write to: pass --out=DIR (a new or empty folder).')
  if storage.is_remote(out):
    raise UserError(f'--out={out} is a bucket; export writes a local folder: pass a local '
                    '--out and copy the folder to the bucket afterwards.')
  if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
    raise UserError(f'--out={out} exists and is not an empty folder; export never overwrites: '
                    'remove it or pass a new folder.')


# --- the function that is exported ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Serving:
  """The pure function fn(weights, inputs) -> outputs of a trained run, and its weights
  (flat list of numpy arrays, named by their path in the variables)."""
  fn: object
  names: list
  weights: list


def serving(run):
  leaves, treedef = jax.tree_util.tree_flatten_with_path(run.variables)
  names = [jax.tree_util.keystr(path, simple=True, separator='/') for path, _ in leaves]
  weights = [np.asarray(jax.device_get(leaf)) for _, leaf in leaves]
  for name, weight in zip(names, weights):
    if weight.dtype.kind not in 'biuf' or weight.dtype.itemsize not in (1, 2, 4, 8):
      raise UserError(f'The variable {name} is {weight.dtype}, which an .npz weights file '
                      'cannot hold; export supports models whose variables are plain arrays.')

  def fn(weights, inputs):
    variables = jax.tree.unflatten(treedef, weights)
    return forward.export_outputs(variables, inputs, model=run.programs.model, task=run.task)

  return Serving(fn, names, weights)


def sequence_bound(run):
  """The longest sequence a language model takes (its max_len), or None for other tasks,
  whose inputs keep the trained shape."""
  if not isinstance(run.task, language_model.LanguageModel):
    return None
  from flax import nnx  # pylint: disable=g-import-not-at-top
  model = nnx.merge(run.programs.model.eval_graph, run.variables.params, run.variables.model_state)
  return int(getattr(model, 'max_len', None) or run.task.seq_len)


def candidate_dims(run):
  """The symbolic dimensions {name: {min, max, meaning}} to export with, best first: 'b'
  the batch size, and for a language model 'l' the sequence length up to max_len."""
  batch = {'b': dict(min=1, max=None, meaning='batch size')}
  bound = sequence_bound(run)
  if bound is None:
    return [batch]
  # l >= 2: the next-token output reads the position before the last.
  return [dict(batch, l=dict(min=2, max=bound, meaning='sequence length (tokens)')), batch]


def input_shapes(run, dims):
  """{input: (shape with the names of `dims` in it, numpy dtype)}."""
  shapes = {}
  for name, (shape, dtype) in run.task.predict_spec().items():
    shape = list(shape)
    if 'l' in dims:  # language model inputs are (seq_len,) per example
      shape[0] = 'l'
    shapes[name] = (['b', *shape], np.dtype(dtype))
  return shapes


def constraints(dims):
  return ([f'{name} >= {d["min"]}' for name, d in dims.items() if d['min'] > 1] +
          [f'{name} <= {d["max"]}' for name, d in dims.items() if d['max']])


def symbolic_specs(shapes, dims):
  """ShapeDtypeStructs with symbolic dims, for jax.export."""
  symbols = dict(zip(dims, jax_export.symbolic_shape(', '.join(dims),
                                                     constraints=constraints(dims))))
  return {name: jax.ShapeDtypeStruct(tuple(symbols.get(d, d) for d in shape), dtype)
          for name, (shape, dtype) in shapes.items()}


def export_program(run, program, platforms):
  """(jax.export.Exported, dims): the first of `candidate_dims` that the model traces with
  (a model that needs a fixed sequence length is exported at the trained one)."""
  weights = [jax.ShapeDtypeStruct(w.shape, w.dtype) for w in program.weights]
  options = candidate_dims(run)
  for dims in options:
    specs = symbolic_specs(input_shapes(run, dims), dims)
    try:
      return jax_export.export(jax.jit(program.fn), platforms=platforms)(weights, specs), dims
    except jax.errors.InconclusiveDimensionOperation as error:
      reason = str(error).strip().splitlines()[0]
      if dims is options[-1]:
        raise UserError(f'The model cannot be exported for any batch size ({reason}); it '
                        'needs shapes that are known when it is traced.') from None
      messages.say(f'jaxlab: the model does not take a variable sequence length ({reason}); exporting '
            f'it at the trained length {run.task.seq_len}.')
  raise AssertionError('unreachable')


# --- the folder ------------------------------------------------------------------------
