"""Writing an export folder: StableHLO (jax.export) with its weights and loader, or a
TensorFlow SavedModel (jax2tf). Written beside the target and renamed when complete."""

import os
import shutil
import tempfile

import jax
import numpy as np

from jaxlab.errors import UserError
from jaxlab.export.program import (
    LOADER_FILE, MODEL_FILE, SAVEDMODEL_SIGNATURE, SAVEDMODEL_TAG, WEIGHTS_FILE, check_format,
    check_out, constraints, export_program, input_shapes, parse_platforms, serving)
from jaxlab.export.signature import copy_workdir_files, signature_of, write_signature
from jaxlab.inference import trained_run as inference


def export(workdir, out, checkpoint='best', fmt='stablehlo', platforms=None, merge_lora=False):
  """Writes the export of `workdir`'s checkpoint into the new folder `out`; returns
  (the TrainedRun, the signature, the platforms). `merge_lora`: a LoRA run's adapters
  folded into its weights (jaxlab.finetune.lora_export)."""
  fmt, platforms = check_format(fmt), parse_platforms(platforms)
  check_out(out)
  if fmt == 'savedmodel':
    tensorflow()  # a missing TensorFlow fails before the checkpoint is read
  run = inference.load(workdir, checkpoint)
  if merge_lora:
    from jaxlab.finetune import lora_export  # pylint: disable=g-import-not-at-top
    run = lora_export.merged_run(run)
  write = write_stablehlo if fmt == 'stablehlo' else write_savedmodel
  # Written beside `out` and renamed when complete: a failed export leaves no half folder.
  parent = os.path.dirname(os.path.abspath(out))
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f'.{os.path.basename(os.path.abspath(out))}.', dir=parent)
  try:
    os.chmod(staging, 0o755)  # mkdtemp's folder is private
    signature = write(run, staging, platforms)
    if merge_lora:  # the folder's config describes the merged, plain model
      from jaxlab import config as config_lib  # pylint: disable=g-import-not-at-top
      config_lib.save(run.config, staging)
    os.rename(staging, out)  # onto an empty folder too
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return run, signature, platforms


def write_stablehlo(run, out, platforms):
  program = serving(run)
  exported, dims = export_program(run, program, platforms)
  with open(os.path.join(out, MODEL_FILE), 'wb') as f:
    f.write(exported.serialize())
  np.savez(os.path.join(out, WEIGHTS_FILE), **dict(zip(program.names, program.weights)))
  shutil.copyfile(_loader_source(), os.path.join(out, LOADER_FILE))
  outputs = _output_specs(exported)
  signature = signature_of(run, 'stablehlo', platforms, dims, outputs, program,
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
  signature = signature_of(run, 'savedmodel', platforms, dims, outputs, program,
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
