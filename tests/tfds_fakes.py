"""Small stand-ins for the TFDS sets the experiments name, prepared by TFDS's own builder
machinery in ArrayRecord format under the real names, versions and features, so that
jaxlab reads them exactly as it would read the real prepared sets (no download).

Record i of a split is example i (shuffling off). Images are encoded with Pillow and
texts are plain, so preparing those needs no TensorFlow; `tfds.features.Audio` needs
TensorFlow to be constructed, so preparing speech_commands does (tensorflow-cpu is in
the test extra).
"""

import io

import numpy as np

SPEECH_WORDS = ('down', 'go', 'left', 'no', 'off', 'on', 'right', 'stop', 'up', 'yes',
                '_silence_', '_unknown_')


def prepare(data_dir, name, version, features, splits, config=None):
  """Prepares `splits` ({split: [example dict]}) as data set `name` in `data_dir`."""
  import tensorflow_datasets as tfds
  from tensorflow_datasets.core import registered

  with registered.skip_registration():  # the real builder keeps its name in the registry
    class Fake(tfds.core.GeneratorBasedBuilder):
      VERSION = tfds.core.Version(version)
      BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=config)] if config else []

      def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=features(),
                                     disable_shuffling=True)

      def _split_generators(self, dl_manager):
        del dl_manager
        return {split: self._generate_examples(examples) for split, examples in splits.items()}

      def _generate_examples(self, examples):  # pylint: disable=arguments-differ
        yield from enumerate(examples)

    Fake.name = name
  Fake(data_dir=data_dir, file_format='array_record').download_and_prepare()


def encoded(image, format_name):
  out = io.BytesIO()
  from PIL import Image
  Image.fromarray(image).save(out, format=format_name)
  return io.BytesIO(out.getvalue())


def imagenet2012(data_dir, num_train=32, num_test=16, size=(40, 30)):
  """imagenet2012 5.1.0: JPEGs of `size`, labels i % 1000, in 'train' and 'validation'."""
  import tensorflow_datasets as tfds
  rng = np.random.default_rng(0)

  def examples(count, split):
    return [{'image': encoded(rng.integers(0, 256, (*size, 3), np.uint8), 'JPEG'),
             'label': i % 1000, 'file_name': f'{split}_{i}.JPEG'} for i in range(count)]

  prepare(data_dir, 'imagenet2012', '5.1.0', lambda: tfds.features.FeaturesDict({
      'image': tfds.features.Image(encoding_format='jpeg'),
      'label': tfds.features.ClassLabel(names=[f'n{i:08d}' for i in range(1000)]),
      'file_name': tfds.features.Text()}),
      {'train': examples(num_train, 'train'), 'validation': examples(num_test, 'validation')})


def speech_clips(count, seed):
  """int16 clips of 0.5 to 1.2 s (some padded, some cropped to 1 s) and labels."""
  rng = np.random.default_rng(seed)
  return [{'audio': rng.integers(-8000, 8000, int(rng.integers(8000, 19200)), dtype=np.int16),
           'label': i % len(SPEECH_WORDS)} for i in range(count)]


def speech_commands(data_dir, num_train=48, num_test=16):
  """speech_commands 0.0.3 (int16 Audio, 12 classes) in 'train', 'validation', 'test'."""
  import tensorflow_datasets as tfds
  prepare(data_dir, 'speech_commands', '0.0.3', lambda: tfds.features.FeaturesDict({
      'audio': tfds.features.Audio(file_format='wav', sample_rate=16000, dtype=np.int16),
      'label': tfds.features.ClassLabel(names=list(SPEECH_WORDS))}),
      {'train': speech_clips(num_train, 0), 'validation': speech_clips(num_test, 1),
       'test': speech_clips(num_test, 2)})


def mnist(data_dir, num_train=64, num_test=32, broken=()):
  """mnist 3.0.1: 28x28x1 PNGs, labels i % 10; the train records in `broken` hold bytes
  that are not an image."""
  import tensorflow_datasets as tfds
  rng = np.random.default_rng(0)

  def examples(count, broken):
    return [{'image': io.BytesIO(b'\x89PNG not really') if i in broken else
             encoded(rng.integers(0, 256, (28, 28), np.uint8), 'PNG'),
             'label': i % 10} for i in range(count)]

  prepare(data_dir, 'mnist', '3.0.1', lambda: tfds.features.FeaturesDict({
      'image': tfds.features.Image(shape=(28, 28, 1)),
      'label': tfds.features.ClassLabel(num_classes=10)}),
      {'train': examples(num_train, set(broken)), 'test': examples(num_test, ())})


TEXTS = ('the cat sat on the mat', 'a very good film indeed', 'not good at all, sadly',
         'one billion words of news')


def imdb_reviews(data_dir, count=8):
  """imdb_reviews/plain_text 1.0.0: short texts, labels i % 2."""
  import tensorflow_datasets as tfds
  examples = [{'text': TEXTS[i % len(TEXTS)], 'label': i % 2} for i in range(count)]
  prepare(data_dir, 'imdb_reviews', '1.0.0', lambda: tfds.features.FeaturesDict({
      'text': tfds.features.Text(),
      'label': tfds.features.ClassLabel(names=['neg', 'pos'])}),
      {'train': examples, 'test': examples, 'unsupervised': examples[:2]}, config='plain_text')


def lm1b(data_dir, count=8):
  """lm1b 1.1.0: short texts."""
  import tensorflow_datasets as tfds
  examples = [{'text': TEXTS[i % len(TEXTS)]} for i in range(count)]
  prepare(data_dir, 'lm1b', '1.1.0',
          lambda: tfds.features.FeaturesDict({'text': tfds.features.Text()}),
          {'train': examples, 'test': examples})


def librispeech(data_dir, texts=('HELLO WORLD', "IT'S A TEST", 'A B C', 'GOODBYE')):
  """librispeech/default 2.1.1 (int16 Audio at 16 kHz, text) with 'train_clean100',
  'train_clean360', 'train_other500' and 'test_clean': utterance i of a split says
  texts[i] in 1 to 2 s of noise (wav here: the real set's flac needs an encoder)."""
  import tensorflow_datasets as tfds
  rng = np.random.default_rng(0)

  def examples(split_index):
    return [{'speech': rng.integers(-8000, 8000, 16000 + 4000 * i, dtype=np.int16),
             'text': text, 'speaker_id': split_index, 'chapter_id': i,
             'id': f'{split_index}-{i}'} for i, text in enumerate(texts)]

  prepare(data_dir, 'librispeech', '2.1.1', lambda: tfds.features.FeaturesDict({
      'speech': tfds.features.Audio(file_format='wav', sample_rate=16000, dtype=np.int16),
      'text': tfds.features.Text(), 'speaker_id': np.int64, 'chapter_id': np.int64,
      'id': np.str_}),
      {split: examples(i) for i, split in enumerate(
          ('train_clean100', 'train_clean360', 'train_other500', 'test_clean'))},
      config='default')
