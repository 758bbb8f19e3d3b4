"""Checking a Hugging Face checkpoint against the jaxlab model it maps to, then loading
it straight into sharded arrays.

`plan` reads config.json and the safetensors headers only; `check` pairs every jaxlab
array with its sources and refuses the checkpoint (UnmappableCheckpoint) unless every
array has a source of the expected shape and every checkpoint tensor is used or
deliberately ignored; `read_variables` then builds each array with
`jax.make_array_from_callback`, so each device's callback reads only that device's slice
(a model larger than one host's memory loads, and nothing is ever held twice).
"""

import dataclasses
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxlab import config as config_lib
from jaxlab import tasks
from jaxlab.checkpoint import digest
from jaxlab.models import modeling
from jaxlab.parallel import mesh as mesh_lib
from jaxlab.pretrained import errors, registry, safetensors_files


@dataclasses.dataclass(frozen=True)
class Plan:
  checkpoint: Any  # safetensors_files.Checkpoint
  family: Any  # the family module (hf_llama, hf_vit, hf_resnet)
  model: Any  # jaxlab.pretrained.families.Model
  config: Any  # the jaxlab ConfigDict of the imported model


def plan(source):
  """What `source` maps to, from its config.json and headers; raises UnmappableCheckpoint."""
  checkpoint = safetensors_files.open_checkpoint(source)
  family = registry.family(checkpoint)
  model = family.describe(checkpoint)
  return Plan(checkpoint, family, model, jaxlab_config(model))


def jaxlab_config(model):
  """The resolved jaxlab config of an imported model, set up for fine-tuning it."""
  config = config_lib.defaults()
  config.model = ml_collections.ConfigDict(model.model)
  config.task.name = model.task
  for key, value in model.data.items():
    config.data[key] = value
  config.data.name = 'python_docs' if model.task == 'language_model' else 'imagenet2012'
  config.optimizer.name = 'adamw'
  config.optimizer.learning_rate = 1e-5 if model.task == 'language_model' else 1e-4
  config.optimizer.schedule = 'warmup_cosine'
  config.optimizer.warmup_percent = 5.0
  config.checkpoint.best_metric = model.best_metric
  config.checkpoint.best_mode = model.best_mode
  return config


def import_mesh():
  """All local devices on the fsdp axis: parameters are split, never replicated, while
  importing (the workdir restores onto any mesh later)."""
  return mesh_lib.create(ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=1)))


def layout(the_plan, mesh):
  """(ModelDef, Layout of Variables) of the imported model on `mesh`."""
  task = tasks.create(the_plan.config, the_plan.model.info,
                      compute_dtype=modeling.compute_dtype(the_plan.config))
  return modeling.variables_layout(the_plan.config, task, mesh)


def check(the_plan, shapes):
  """{jaxlab path: leaf} for every array of `shapes` (a Variables of ShapeDtypeStructs);
  UnmappableCheckpoint listing every problem otherwise. Reads no weights."""
  checkpoint = the_plan.checkpoint
  expected = paths_and_shapes(shapes)
  leaves = the_plan.family.leaves(checkpoint, the_plan.model, list(expected))
  problems = {'unmapped keys': [], 'missing keys': [], 'wrong shapes': [],
              'unsupported dtypes': [], 'jaxlab arrays without a source': []}
  used = set()
  for path, shape in expected.items():
    leaf = leaves.get(path)
    if leaf is None or tuple(leaf.shape) != shape:
      problems['jaxlab arrays without a source'].append(f'{path} {list(shape)}')
      continue
    for source in leaf.sources:
      used.add(source.name)
      found = checkpoint.tensors.get(source.name)
      if found is None:
        problems['missing keys'].append(f'{source.name} (expected {list(source.shape)})')
      elif found.shape != tuple(source.shape):
        problems['wrong shapes'].append(f'{source.name} is {list(found.shape)}, expected '
                                        f'{list(source.shape)}')
      elif found.dtype not in safetensors_files.FLOAT_DTYPES:
        problems['unsupported dtypes'].append(f'{source.name} ({found.dtype})')
  problems['unmapped keys'] = [
      f'{name} {list(info.shape)}' for name, info in sorted(checkpoint.tensors.items())
      if name not in used and not the_plan.family.ignored(checkpoint, name)]
  if any(problems.values()):
    raise errors.refuse(
        checkpoint.directory, checkpoint.architecture, problems,
        f'jaxlab maps it onto {the_plan.model.model["name"]} with the sizes in its config.json; '
        'a checkpoint whose tensors differ from them is a different or modified model, which '
        'jaxlab does not import. Nothing was loaded or written.')
  return leaves


def read_variables(the_plan, shapes, shardings):
  """Variables with each array placed by `shardings`, every device reading only its slice."""
  leaves = check(the_plan, shapes)
  checkpoint = the_plan.checkpoint

  def make(path, shape_dtype, sharding):
    leaf = leaves[digest.path_name(path)]
    dtype = np.dtype(shape_dtype.dtype)
    return jax.make_array_from_callback(
        shape_dtype.shape, sharding, lambda index: leaf.read(index, checkpoint, dtype))

  return jax.tree_util.tree_map_with_path(make, shapes, shardings)


def paths_and_shapes(shapes):
  """{'params/embed/embedding': (V, D), ...} of a tree of ShapeDtypeStructs."""
  return {digest.path_name(path): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_leaves_with_path(shapes)}


def model_config(source):
  """The jaxlab config an import of `source` writes (headers only: fast, nothing loaded)."""
  return plan(source).config


def load(source, mesh=None, shardings=None):
  """(jaxlab config, modeling.Variables) of the Hugging Face checkpoint folder `source`.

  The arrays are placed by `shardings` (a modeling.Variables of shardings, e.g. the
  `variables_layout(...)[1].shardings` of a fine-tuning run whose config.model is
  `model_config(source).model`), or else by the config's sharding rules on `mesh`
  (default: every local device on the fsdp axis). Raises UnmappableCheckpoint (a
  UserError) for a checkpoint jaxlab cannot map, before reading any weight.
  """
  the_plan = plan(source)
  _, the_layout = layout(the_plan, mesh or import_mesh())
  variables = read_variables(the_plan, the_layout.shapes, shardings or the_layout.shardings)
  return the_plan.config, variables
