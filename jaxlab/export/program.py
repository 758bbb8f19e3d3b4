"""`jaxlab export`: a trained model as a file that runs without jaxlab.

  stablehlo   the eval-mode forward pass serialized with `jax.export` (any batch size;
              a language model also any sequence length up to its max_len), for each
              platform asked for, with its weights beside it as an .npz argument.
              `jaxlab/exported_model.py` (copied in as load_exported.py) runs it with
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
import datetime
import json
import os
import shutil
import tempfile

import jax
import numpy as np
from jax import export as jax_export

from jaxlab import data as data_lib
from jaxlab import storage
from jaxlab.inference import forward
from jaxlab.inference import trained_run as inference
from jaxlab.workdir import files as workdir_files
from jaxlab.errors import UserError
from jaxlab.tasks import language_model

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


def main(workdir, out, checkpoint='best', fmt='stablehlo', platforms=None):
  """Writes the export of `workdir`'s checkpoint into the new folder `out`."""
  fmt, platforms = check_format(fmt), parse_platforms(platforms)
  check_out(out)
  if fmt == 'savedmodel':
    tensorflow()  # a missing TensorFlow fails before the checkpoint is read
  run = inference.load(workdir, checkpoint)
  write = write_stablehlo if fmt == 'stablehlo' else write_savedmodel
  # Written beside `out` and renamed when complete: a failed export leaves no half folder.
  parent = os.path.dirname(os.path.abspath(out))
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f'.{os.path.basename(os.path.abspath(out))}.', dir=parent)
  try:
    os.chmod(staging, 0o755)  # mkdtemp's folder is private
    signature = write(run, staging, platforms)
    os.rename(staging, out)  # onto an empty folder too
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  shown = ', '.join(f'{name} {_shown(spec["shape"])} {spec["dtype"]}'
                    for name, spec in signature['inputs'].items())
  print(f'Exported step {run.step} of {workdir} as {fmt} for {", ".join(platforms)} to {out} '
        f'(inputs: {shown}).', flush=True)
  return signature


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
      print(f'jaxlab: the model does not take a variable sequence length ({reason}); exporting '
            f'it at the trained length {run.task.seq_len}.', flush=True)
  raise AssertionError('unreachable')


# --- the folder ------------------------------------------------------------------------


def write_stablehlo(run, out, platforms):
  program = serving(run)
  exported, dims = export_program(run, program, platforms)
  with open(os.path.join(out, MODEL_FILE), 'wb') as f:
    f.write(exported.serialize())
  np.savez(os.path.join(out, WEIGHTS_FILE), **dict(zip(program.names, program.weights)))
  shutil.copyfile(_loader_source(), os.path.join(out, LOADER_FILE))
  outputs = _output_specs(exported)
  signature = _signature(run, 'stablehlo', platforms, dims, outputs, program,
                         model_file=MODEL_FILE, weights_file=WEIGHTS_FILE, loader=LOADER_FILE)
  write_signature(out, signature)
  copy_workdir_files(run.workdir, run.info, out)
  return signature


def tensorflow():
  """(tf, jax2tf), or a UserError saying how to install TensorFlow."""
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError('--format=savedmodel needs TensorFlow, which is not installed: '
                    "pip install 'jaxlab[savedmodel]' (or tensorflow-cpu), or export "
                    '--format=stablehlo, which needs jax alone.') from None
  # Writing the SavedModel needs no accelerator; a GPU build of TensorFlow would
  # otherwise take the GPU memory that JAX holds.
  try:
    tf.config.set_visible_devices([], 'GPU')
  except RuntimeError:  # TensorFlow already started in this process: leave it as it is
    pass
  return tf, jax2tf


def write_savedmodel(run, out, platforms):
  tf, jax2tf = tensorflow()
  program = serving(run)
  exported, dims = export_program(run, program, platforms)  # the same function and shapes
  shapes = input_shapes(run, dims)
  converted = jax2tf.convert(
      program.fn, with_gradient=False, native_serialization_platforms=platforms,
      polymorphic_shapes=[None, {name: '(' + ', '.join(map(str, shape)) + ')'
                                 for name, (shape, _) in shapes.items()}],
      polymorphic_constraints=constraints(dims))
  module = tf.Module()
  module.weights = [tf.Variable(w, trainable=False, name=n.replace('/', '.'))
                    for n, w in zip(program.names, program.weights)]
  input_signature = [tf.TensorSpec([None if isinstance(d, str) else d for d in shape],
                                   tf.as_dtype(dtype), name=name)
                     for name, (shape, dtype) in shapes.items()]

  @tf.function(autograph=False, input_signature=input_signature)
  def serve(*arrays):
    return converted(module.weights, dict(zip(shapes, arrays)))

  module.serve = serve
  tf.saved_model.save(module, out, signatures={SAVEDMODEL_SIGNATURE: serve})
  outputs = _output_specs(exported)
  signature = _signature(run, 'savedmodel', platforms, dims, outputs, program,
                         saved_model=dict(tags=[SAVEDMODEL_TAG],
                                          signature_def=SAVEDMODEL_SIGNATURE))
  write_signature(out, signature)
  copy_workdir_files(run.workdir, run.info, out)
  return signature


def _loader_source():
  from jaxlab.export import exported_model  # pylint: disable=g-import-not-at-top
  return exported_model.__file__


def _output_specs(exported):
  """{output: {shape, dtype}}, symbolic dims by name."""
  avals = jax.tree.unflatten(exported.out_tree, exported.out_avals)
  return {name: dict(shape=[d if isinstance(d, int) else str(d) for d in aval.shape],
                     dtype=np.dtype(aval.dtype).name) for name, aval in avals.items()}


def _signature(run, fmt, platforms, dims, outputs, program, **files):
  info = run.info
  return dict(
      format=f'jaxlab-{fmt}', format_version=FORMAT_VERSION,
      jaxlab_version=_jaxlab_version(), jax_version=jax.__version__,
      exported_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      compatibility=COMPATIBILITY,
      **files,
      workdir=run.workdir, checkpoint_step=run.step,
      task=run.config.task.name, model=run.config.model.name, data=info.name,
      compute_dtype=np.dtype(run.task.compute_dtype).name, platforms=list(platforms),
      dims=dims,
      inputs={name: dict(shape=shape, dtype=dtype.name)
              for name, (shape, dtype) in input_shapes(run, dims).items()},
      outputs=outputs, preprocessing=preprocessing(run, dims),
      class_names=list(info.class_names) or (
          [str(i) for i in range(info.num_classes)] if info.num_classes else []),
      metrics=checkpoint_metrics(run.workdir, run.step),
      weights=[dict(name=name, shape=list(w.shape), dtype=w.dtype.name)
               for name, w in zip(program.names, program.weights)])


def _jaxlab_version():
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  try:
    return metadata.version('jaxlab')
  except metadata.PackageNotFoundError:  # run from a source tree
    return 'unknown'


def preprocessing(run, dims):
  """How a raw input (one file of `jaxlab predict`) becomes the model's inputs."""
  info, spec = run.info, run.task.predict_spec()
  if 'image' in spec:
    height, width, channels = spec['image'][0]
    return dict(kind='image', height=height, width=width, channels=channels,
                color='L' if channels == 1 else 'RGB', resize='bilinear',
                pixel_range=[0.0, float(info.pixel_max)],
                note='8-bit pixels scaled from 0..255 to pixel_range, as float32')
  if 'audio' in spec:
    return dict(kind='audio', sample_rate=info.sample_rate, num_samples=spec['audio'][0][0],
                note='a WAV file: channels averaged, resampled to sample_rate, then padded '
                     'with zeros or cropped to num_samples')
  if info.tokenizer:
    length = next(iter(spec.values()))[0][0]  # every token input is (seq_len,)
    if isinstance(run.task, language_model.LanguageModel):
      note = ('one row per text: its last sequence_length tokens, with segment_ids 1 and '
              'positions 0, 1, ... on them and 0 on the padding after them')
    else:
      note = 'the first sequence_length tokens of the text, padded with token 0'
    return dict(kind='text', tokenizer=info.tokenizer, vocab_size=info.vocab_size,
                sequence_length=length, max_sequence_length=(dims.get('l') or {}).get('max'),
                note=note)
  return dict(kind='arrays', note='the inputs as the data set holds them')


def checkpoint_metrics(workdir, step):
  """The eval metrics of checkpoint `step`: `jaxlab eval`'s file, else training's last
  eval record at that step; None if neither."""
  path = workdir_files.path(workdir, workdir_files.eval_result(step))
  if storage.exists(path):
    return json.loads(storage.read_text(path))
  records = [json.loads(line) for line in
             storage.read_lines(workdir_files.path(workdir, workdir_files.METRICS))]
  evals = [r for r in records if r.get('step') == step and any(k.startswith('eval/') for k in r)]
  if not evals:
    return None
  return dict(step=step, **{k[len('eval/'):]: v for k, v in evals[-1].items()
                            if k.startswith('eval/')})


def write_signature(out, signature):
  with open(os.path.join(out, SIGNATURE), 'w', encoding='utf-8') as f:
    f.write(json.dumps(signature, indent=2) + '\n')


def copy_workdir_files(workdir, info, out):
  """What jaxlab's loaders read from a workdir: its config, data set info and tokenizer."""
  config_text = storage.read_text(workdir_files.path(workdir, workdir_files.CONFIG))
  with open(os.path.join(out, workdir_files.CONFIG), 'w', encoding='utf-8') as f:
    f.write(config_text)
  if info.tokenizer and info.tokenizer.get('kind') == 'sentencepiece':
    from jaxlab.data import tokenizers  # pylint: disable=g-import-not-at-top
    model = storage.epath.Path(tokenizers.model_path(info.tokenizer, workdir)).read_bytes()
    with open(os.path.join(out, workdir_files.TOKENIZER), 'wb') as f:
      f.write(model)
    # A tokenizer shared between runs (an absolute 'file') is read from the copy.
    info = dataclasses.replace(info, tokenizer=dict(info.tokenizer, file=workdir_files.TOKENIZER))
  data_lib.save_info(info, out)


def _shown(shape):
  return '(' + ', '.join(map(str, shape)) + ')'
