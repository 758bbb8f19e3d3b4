"""A Hugging Face checkpoint folder: config.json and its *.safetensors files.

Only headers are read up front (names, shapes, dtypes); tensor data is read slice by
slice through `safetensors.safe_open(..., framework='np')`, which maps the file and
copies out just the requested region. Each read opens and closes its file, so no
mapping outlives the read: the pages it touched leave this process's resident memory
(a model larger than the host's memory then loads shard by shard). No torch, no pickle.
"""

import dataclasses
import json
import os

import ml_dtypes  # pylint: disable=unused-import  (registers numpy's 'bfloat16' for safetensors)
import numpy as np
import safetensors

from jaxlab.pretrained import errors

CONFIG = 'config.json'
INDEX = 'model.safetensors.index.json'
SINGLE = 'model.safetensors'
# safetensors dtype names jaxlab converts to float32 parameters.
FLOAT_DTYPES = {'F64', 'F32', 'F16', 'BF16'}


@dataclasses.dataclass(frozen=True)
class TensorInfo:
  file: str  # absolute path of the .safetensors file holding it
  shape: tuple
  dtype: str  # safetensors' name: 'F32', 'BF16', ...


@dataclasses.dataclass(frozen=True)
class Checkpoint:
  """What a checkpoint folder holds, from config.json and the safetensors headers."""
  directory: str
  config: dict
  tensors: dict  # {name: TensorInfo}

  @property
  def architecture(self):
    architectures = self.config.get('architectures') or []
    return architectures[0] if architectures else None

  def read(self, name, index):
    """tensor[name][index] as a numpy array; index is a tuple of slices, one per axis."""
    info = self.tensors[name]
    with safetensors.safe_open(info.file, framework='np') as f:
      if not info.shape:
        return np.asarray(f.get_tensor(name))
      return np.asarray(f.get_slice(name)[index])

  def disk_bytes(self):
    return sum(os.path.getsize(f) for f in {t.file for t in self.tensors.values()})

  def json_file(self, name):
    """A JSON file beside config.json (e.g. preprocessor_config.json) as a dict, or {}."""
    path = os.path.join(self.directory, name)
    if not os.path.exists(path):
      return {}
    with open(path, encoding='utf-8') as f:
      return json.load(f)


def open_checkpoint(directory):
  """The Checkpoint in `directory`; UnmappableCheckpoint if config.json, the index or a
  shard it names is missing or unreadable."""
  directory = os.path.abspath(os.path.expanduser(directory))
  config_path = os.path.join(directory, CONFIG)
  if not os.path.isdir(directory) or not os.path.exists(config_path):
    raise errors.UnmappableCheckpoint(
        f'Cannot import {directory}: it is not a Hugging Face checkpoint folder (no {CONFIG}). '
        'Give --source=DIR, a folder holding config.json and model.safetensors (or shards '
        f'with {INDEX}), e.g. one that `huggingface-cli download` or `save_pretrained` wrote.')
  config = _read_json(config_path, directory)
  files = _weight_files(directory)
  missing = [os.path.basename(f) for f in files if not os.path.exists(f)]
  if missing:
    raise errors.refuse(directory, (config.get('architectures') or [None])[0],
                        {'missing shard files named by ' + INDEX: missing},
                        'Download the checkpoint again, completely (every shard the index '
                        'names), then rerun.')
  tensors = {}
  for file in files:
    tensors.update(_header(file, directory))
  _check_index(directory, files, tensors)
  return Checkpoint(directory, config, tensors)


def _read_json(path, directory):
  try:
    with open(path, encoding='utf-8') as f:
      return json.load(f)
  except (OSError, ValueError) as error:
    raise errors.UnmappableCheckpoint(
        f'Cannot import {directory}: {os.path.basename(path)} is not readable JSON ({error}). '
        'Download the checkpoint again.') from None


def _weight_files(directory):
  """The .safetensors files holding the weights: the index's, or model.safetensors."""
  index_path = os.path.join(directory, INDEX)
  if os.path.exists(index_path):
    weight_map = _read_json(index_path, directory).get('weight_map', {})
    return [os.path.join(directory, name) for name in sorted(set(weight_map.values()))]
  if os.path.exists(os.path.join(directory, SINGLE)):
    return [os.path.join(directory, SINGLE)]
  others = sorted(name for name in os.listdir(directory) if name.endswith('.safetensors'))
  if others:
    return [os.path.join(directory, name) for name in others]
  pickled = sorted(name for name in os.listdir(directory) if name.endswith(('.bin', '.pt', '.pth')))
  hint = (f' It holds {", ".join(pickled)}: PyTorch pickles, which jaxlab does not read (they '
          'can run code); convert them with `save_pretrained(..., safe_serialization=True)`.'
          if pickled else '')
  raise errors.UnmappableCheckpoint(
      f'Cannot import {directory}: it has no *.safetensors weights.{hint}')


def _header(file, directory):
  try:
    with safetensors.safe_open(file, framework='np') as f:
      return {name: TensorInfo(file, tuple(f.get_slice(name).get_shape()),
                               f.get_slice(name).get_dtype()) for name in f.keys()}
  except Exception as error:  # pylint: disable=broad-except  (safetensors' own error types)
    raise errors.UnmappableCheckpoint(
        f'Cannot import {directory}: {os.path.basename(file)} is not a readable safetensors '
        f'file ({str(error).strip().splitlines()[0]}). Download it again.') from None


def _check_index(directory, files, tensors):
  """Every tensor the index names is in the shard it names."""
  index_path = os.path.join(directory, INDEX)
  if not os.path.exists(index_path):
    return
  weight_map = _read_json(index_path, directory).get('weight_map', {})
  absent = [name for name, file in weight_map.items()
            if name not in tensors or tensors[name].file != os.path.join(directory, file)]
  if absent:
    raise errors.refuse(directory, None, {f'tensors named by {INDEX} but not in their shard':
                                          absent},
                        'The index and the shards disagree: download the checkpoint again.')
