"""The DatasetInfo of a prepared TFDS folder, with features that decode without TensorFlow.

TFDS rebuilds a prepared set's features from its features.json, and some feature classes
need TensorFlow merely to be constructed: `tfds.features.Audio` asks TensorFlow for its
dtype, so `speech_commands` cannot even be opened without it. Yet an Audio feature that is
not lazily decoded stores its samples as a plain integer tensor (int16 for
speech_commands), exactly as `tfds.features.Tensor` of the same shape, dtype and encoding
does, and decodes them the same way with numpy. `info_proto` swaps those for Tensors, so
the records read the same with or without TensorFlow.
"""

import json
import os

_AUDIO = 'tensorflow_datasets.core.features.audio_feature.Audio'
_TENSOR = 'tensorflow_datasets.core.features.tensor_feature.Tensor'


def info_proto(builder_dir):
  """The DatasetInfo proto of a prepared folder, its features read from features.json
  with every eagerly decoded Audio as the Tensor it is stored as. Without features.json
  (TFDS < 4), the proto as dataset_info.json has it."""
  from google.protobuf import json_format
  from tensorflow_datasets.core import dataset_info
  from tensorflow_datasets.core.proto import feature_pb2
  proto = dataset_info.read_proto_from_builder_dir(builder_dir)
  path = os.path.join(os.fspath(builder_dir), 'features.json')
  if not proto.HasField('features') and os.path.exists(path):
    with open(path) as f:
      features = as_tensors(json.load(f))
    proto.features.CopyFrom(json_format.ParseDict(features, feature_pb2.Feature()))
  return proto


def as_tensors(feature):
  """features.json's (nested) feature with each eagerly decoded Audio as a Tensor."""
  if isinstance(feature, list):
    return [as_tensors(f) for f in feature]
  if not isinstance(feature, dict):
    return feature
  audio = feature.get('audio')
  if feature.get('pythonClassName') == _AUDIO and audio and not audio.get('lazyDecode'):
    tensor = {k: audio[k] for k in ('shape', 'dtype', 'encoding') if k in audio}
    return {**{k: v for k, v in feature.items() if k not in ('audio', 'pythonClassName')},
            'pythonClassName': _TENSOR, 'tensor': tensor}
  return {k: as_tensors(v) for k, v in feature.items()}
