"""Runs a model that `jaxlab export` wrote, with nothing but jax and numpy.

`jaxlab export` copies this file into the export folder as `load_exported.py`, so the
folder alone is enough (jax, numpy and flatbuffers installed; no flax, no jaxlab):

  import numpy as np, load_exported
  model = load_exported.load('export_dir')
  print(model.signature['inputs'])        # names, shapes ('b' = any batch size), dtypes
  outputs = model({'image': np.zeros((3, 8, 8, 1), np.float32)})
  print(outputs['probabilities'].argmax(-1))

The folder holds `signature.json` (inputs, outputs, preprocessing, classes, metrics),
the serialized `jax.export` program and its weights (an .npz, passed to the program as
an argument). Newer JAX versions load an export for about six months after it was made
(JAX's compatibility window); re-export with a newer jaxlab after that.
"""

import json
import os

import jax
import numpy as np
from jax import export

SIGNATURE = 'signature.json'


class ExportedModel:
  """`model(inputs)` -> outputs: dicts of numpy arrays named as in `model.signature`."""

  def __init__(self, directory):
    self.directory = os.fspath(directory)
    with open(os.path.join(self.directory, SIGNATURE), encoding='utf-8') as f:
      self.signature = json.load(f)
    with open(os.path.join(self.directory, self.signature['model_file']), 'rb') as f:
      self.exported = export.deserialize(bytearray(f.read()))
    platform = export.default_export_platform()
    if platform not in self.exported.platforms:
      raise RuntimeError(
          f'{self.directory} was exported for {", ".join(self.exported.platforms)}, but JAX runs '
          f'on {platform} here. Export again with --platforms=cpu,{platform}, or run on the CPU '
          'with JAX_PLATFORMS=cpu.')
    with np.load(os.path.join(self.directory, self.signature['weights_file'])) as weights:
      # On the device once; every call reuses them.
      self.weights = [jax.device_put(weights[w['name']]) for w in self.signature['weights']]
    self._call = jax.jit(self.exported.call)  # compiled once per input shape

  def __call__(self, inputs):
    arrays = self.check(inputs)
    outputs = self._call(self.weights, arrays)
    return {name: np.asarray(value) for name, value in outputs.items()}

  def check(self, inputs):
    """The inputs as arrays of the signature's dtypes; ValueError naming what is wrong."""
    expected = self.signature['inputs']
    unknown, missing = sorted(set(inputs) - set(expected)), sorted(set(expected) - set(inputs))
    if unknown or missing:
      raise ValueError(f'The model takes the inputs {sorted(expected)}; got unknown {unknown} '
                       f'and missing {missing}.')
    arrays, sizes = {}, {}
    for name, spec in expected.items():
      array = np.asarray(inputs[name])
      dtype = np.dtype(spec['dtype'])
      if not np.can_cast(array.dtype, dtype, 'same_kind'):
        raise ValueError(f'Input {name!r} must be {dtype.name}, got {array.dtype.name}.')
      if array.ndim != len(spec['shape']):
        raise ValueError(f'Input {name!r} must have shape {_shown(spec["shape"])}, got '
                         f'{array.shape}.')
      for size, dim in zip(array.shape, spec['shape']):
        if isinstance(dim, int) and size != dim or size < 1:
          raise ValueError(f'Input {name!r} must have shape {_shown(spec["shape"])}, got '
                           f'{array.shape}.')
        if isinstance(dim, str) and sizes.setdefault(dim, (size, name))[0] != size:
          raise ValueError(f'Inputs {sizes[dim][1]!r} and {name!r} disagree on {dim} '
                           f'({sizes[dim][0]} != {size}).')
      arrays[name] = array.astype(dtype, copy=False)
    for dim, (size, name) in sizes.items():
      bound = self.signature['dims'][dim].get('max')
      if bound is not None and size > bound:
        raise ValueError(f'Input {name!r}: {dim} = {size} is more than the model takes ({bound}).')
      if size < self.signature['dims'][dim]['min']:
        raise ValueError(f'Input {name!r}: {dim} = {size} is less than the model takes '
                         f'({self.signature["dims"][dim]["min"]}).')
    return arrays


def _shown(shape):
  return '(' + ', '.join(map(str, shape)) + ')'


def load(directory):
  """The model exported into `directory`, ready to call on this machine's default device."""
  return ExportedModel(directory)
