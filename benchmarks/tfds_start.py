"""Training on real TFDS data, start to exit: a prepared data set against an .npz.

  python -m benchmarks.tfds_start [--short] [--out=FILE.json]

Times the whole `jaxlab train` process of experiments/mnist_mlp.py (60,000 train and
10,000 test images, 5 epochs) on
  (a) `fashion_mnist` prepared in ArrayRecord format, with an empty decoded cache
      (the first run on a machine: every PNG is decoded, then cached),
  (b) the same again (the decoded arrays are memory-mapped from the cache),
  (c) the same images from an .npz file,
with the persistent compilation cache on (a temporary folder, filled by one untimed run
first, so that no timed run compiles) and off. The target is (b) <= 1.2 x (c).

The data set is built offline by TFDS's own `FashionMNIST` builder (its features,
version and dataset_info.json) with the download replaced by synthetic garments
(`jaxlab.data.synthetic.blend`, PNG-encoded); the .npz holds the same images.
`measure(short)` returns the dict that `main` writes as JSON.
"""

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks import whole_process

ROOT = whole_process.ROOT
FULL = dict(num_train=60000, num_test=10000, epochs=5, repeats=3)
SHORT = dict(num_train=6000, num_test=1000, epochs=1, repeats=1)
TARGET = 1.2  # the bound on warm cache / npz
VARIANTS = ('tfds_cold_cache', 'tfds_warm_cache', 'npz')


def measure(short=False):
  """{'sizes', 'build_s', 'compilation_cache_on': {...}, 'compilation_cache_off': {...}}.

  Each compilation-cache section holds the median seconds of each variant
  ('<variant>_s'), the ratios 'warm_over_npz' and 'cold_over_npz', every run's
  seconds ('runs') and the final test accuracies ('test_accuracy')."""
  sizes = SHORT if short else FULL
  with tempfile.TemporaryDirectory() as tmp:
    data_dir, npz = os.path.join(tmp, 'tfds'), os.path.join(tmp, 'same.npz')
    started = time.perf_counter()
    subprocess.run([sys.executable, '-c', _BUILD, data_dir, npz, str(sizes['num_train']),
                    str(sizes['num_test'])], cwd=ROOT, check=True, capture_output=True)
    result = dict(short=short, sizes=sizes, cores=os.cpu_count(), target=TARGET,
                  build_s=time.perf_counter() - started)
    for cache in ('on', 'off'):
      xla_cache = os.path.join(tmp, 'xla') if cache == 'on' else ''
      result[f'compilation_cache_{cache}'] = _compare(data_dir, npz, xla_cache, sizes, tmp)
  return result


_BUILD = 'import sys; from benchmarks import tfds_start; tfds_start.build(*sys.argv[1:])'


def build(data_dir, npz, num_train, num_test):
  """Prepares `fashion_mnist` under `data_dir` and writes the same images to `npz`.
  Run in its own process: it patches TFDS's builder class."""
  import tensorflow_datasets as tfds
  from tensorflow_datasets.image_classification import mnist
  images, labels = _garments(int(num_train) + int(num_test))
  splits = dict(train=slice(0, int(num_train)), test=slice(int(num_train), None))
  np.savez(npz, x_train=images[splits['train']], y_train=labels[splits['train']],
           x_test=images[splits['test']], y_test=labels[splits['test']])

  def split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    return {k: self._generate_examples(images[s], labels[s]) for k, s in splits.items()}

  def generate_examples(self, split_images, split_labels):  # pylint: disable=unused-argument
    for i, (image, label) in enumerate(zip(split_images, split_labels)):
      yield i, {'image': io.BytesIO(_png(image)), 'label': int(label)}

  mnist.FashionMNIST._split_generators = split_generators
  mnist.FashionMNIST._generate_examples = generate_examples
  tfds.builder('fashion_mnist', data_dir=data_dir, file_format='array_record').download_and_prepare()


def _garments(count):
  """Learnable 28x28x1 uint8 images (one prototype per class plus noise) and labels."""
  from jaxlab.data import synthetic
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 10, count).astype(np.int64)
  return synthetic.blend(labels, (28, 28, 1), 10, rng), labels


def _png(image):
  from PIL import Image
  encoded = io.BytesIO()
  Image.fromarray(image[..., 0]).save(encoded, format='PNG')  # TFDS would import TF to encode
  return encoded.getvalue()


def command(workdir, sizes, data_args):
  return [sys.executable, '-m', 'jaxlab.main', 'train', '--config=experiments/mnist_mlp.py',
          f'--workdir={workdir}', '--config.progress=False',
          f'--config.data.num_train={sizes["num_train"]}',
          f'--config.data.num_test={sizes["num_test"]}',
          f'--config.num_epochs={sizes["epochs"]}', *data_args]


def _compare(data_dir, npz, xla_cache, sizes, tmp):
  env = dict(os.environ, JAXLAB_COMPILATION_CACHE=xla_cache)
  tfds_args = ['--config.data.name=fashion_mnist', f'--config.data.data_dir={data_dir}']
  npz_args = ['--config.data.name=npz', f'--config.data.path={npz}']
  if xla_cache:  # fill the compilation cache, untimed
    whole_process.timed(command(tempfile.mkdtemp(dir=tmp), sizes, npz_args), env)
  runs = {v: [] for v in VARIANTS}
  for _ in range(sizes['repeats']):
    decoded = f'--config.data.cache_dir={tempfile.mkdtemp(dir=tmp)}'  # empty: (a) fills it
    for variant, args in zip(VARIANTS, (tfds_args + [decoded], tfds_args + [decoded], npz_args)):
      seconds, done = whole_process.timed(command(tempfile.mkdtemp(dir=tmp), sizes, args), env)
      runs[variant].append((seconds, done['test_accuracy']))
      print(f'  compilation cache {"on " if xla_cache else "off"} {variant:16s} '
            f'{seconds:6.2f}s  accuracy {done["test_accuracy"]:.4f}', flush=True)
  return _summary(runs)


def _summary(runs):
  out = {f'{v}_s': statistics.median(s for s, _ in runs[v]) for v in VARIANTS}
  out['warm_over_npz'] = out['tfds_warm_cache_s'] / out['npz_s']
  out['cold_over_npz'] = out['tfds_cold_cache_s'] / out['npz_s']
  out['runs'] = {v: [s for s, _ in r] for v, r in runs.items()}
  out['test_accuracy'] = {v: [a for _, a in r] for v, r in runs.items()}
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--short', action='store_true', help='6,000/1,000 examples, 1 epoch.')
  parser.add_argument('--out', help='Also write the JSON here.')
  args = parser.parse_args(argv)
  text = json.dumps(measure(args.short), indent=2)
  print(text)
  if args.out:
    with open(args.out, 'w') as f:
      f.write(text + '\n')


if __name__ == '__main__':
  main()
