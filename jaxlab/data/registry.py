"""Data sets by name: the loaders behind `--config.data.name`, limited to
num_train/num_test, and the shapes known without loading."""

import dataclasses

from jaxlab.data import sources
from jaxlab.data.info import KNOWN_SHAPES, image_info
from jaxlab.errors import UserError


def _loaders():
  # Imported lazily: the TFDS import costs seconds and most runs never need it.
  from jaxlab.data import arrays, audio_sets, digits, imagenet, synthetic, text_sets  # pylint: disable=g-import-not-at-top
  from jaxlab.data import tfds_images  # pylint: disable=g-import-not-at-top
  from jaxlab.data import hf_disk, image_folder, table, text_files  # pylint: disable=g-import-not-at-top
  from jaxlab.data import coco_folder, shapes_detection, tfds_detection  # pylint: disable=g-import-not-at-top
  from jaxlab.data import speech_sets  # pylint: disable=g-import-not-at-top
  return {
      'coco_json': coco_folder.load,
      'shapes_detection': shapes_detection.load,
      'coco': tfds_detection.load,
      'voc': tfds_detection.load,
      'image_folder': image_folder.load,
      'table': table.load,
      'text_files': text_files.load,
      'hf_disk': hf_disk.load,
      'npz': arrays.load,
      'digits': digits.load,
      'mnist': tfds_images.load,
      'fashion_mnist': tfds_images.load,
      'cifar10': tfds_images.load,
      'imagenet2012': imagenet.load,
      'synthetic': synthetic.load,
      **text_sets.LOADERS,
      **audio_sets.LOADERS,
      **speech_sets.LOADERS,
      **_pair_loaders(),
  }


def _pair_loaders():
  from jaxlab.data import pair_sets  # pylint: disable=g-import-not-at-top
  return pair_sets.LOADERS


def load(data_config, workdir=None):
  """The Splits of the data set that `data_config.name` names, limited to
  num_train/num_test. `workdir` is where a trained tokenizer is kept."""
  loaders = _loaders()
  if data_config.name not in loaders:
    raise UserError(
        f'Unknown data set {data_config.name!r} in --config.data.name. '
        f'Known data sets: {", ".join(sorted(loaders))}.')
  splits = loaders[data_config.name](data_config, workdir)
  return dataclasses.replace(
      splits, train=sources.head(splits.train, data_config.num_train),
      test=sources.head(splits.test, data_config.num_test))


def known_info(data_config):
  """(DatasetInfo, number of training examples) of a data set whose shapes are known
  without reading, downloading or generating it (what --dry_run needs), or None."""
  from jaxlab.data import audio_sets, text_sets  # pylint: disable=g-import-not-at-top
  name = data_config.name if data_config.name != 'synthetic' else data_config.synthetic_like
  if name == 'shapes_detection':
    from jaxlab.data import shapes_detection  # pylint: disable=g-import-not-at-top
    return shapes_detection.known_info(data_config)
  if name in ('coco', 'voc'):
    from jaxlab.data import tfds_detection  # pylint: disable=g-import-not-at-top
    return tfds_detection.known_info(data_config)
  if name in ('spoken_sentences', 'librispeech'):
    from jaxlab.data import speech_sets  # pylint: disable=g-import-not-at-top
    return speech_sets.known_info(data_config)
  if name in audio_sets.KNOWN_SIZES:
    return audio_sets.known_info(data_config)
  from jaxlab.data import pair_sets  # pylint: disable=g-import-not-at-top
  if name in pair_sets.SHAPES:
    return pair_sets.SHAPES[name](data_config)
  if name in text_sets.SHAPES:
    return text_sets.SHAPES[name](data_config)
  if name in KNOWN_SHAPES:
    known = KNOWN_SHAPES[name]
    info = image_info(name, known['image_shape'], known['num_classes'])
    return info, data_config.num_train or known['num_train']
  return None
