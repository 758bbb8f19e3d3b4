"""Host pipeline throughput: what the CPUs feed the device, per core.

  python -m benchmarks.host_pipeline [--short] [--out=FILE.json]

(a) ImageNet-shaped JPEG path: synthetic 500x375 photo-like JPEGs (quality 90), each
    decoded, Inception-cropped to 224 and flipped (`TrainImageTransform`), and the eval
    path (`EvalImageTransform`); in one process and in one worker process per core.
(b) Text: `ByteTokenizer().encode` and `packing.pack` into 1024-token rows, when
    `jaxlab.data.tokenizers` and `jaxlab.data.packing` exist.
(c) TFDS records: a Fashion-MNIST-sized ArrayRecord data set (70,000 28x28 PNGs) built
    here with TFDS's builder; decoded on one core and in parallel; the decoded cache's
    write, its memory-mapped load against np.load of an .npz of the same arrays, and a
    whole process (start to exit) loading each way.

`measure(short)` returns the dict that `main` writes as JSON.
"""

import argparse
import concurrent.futures
import functools
import io
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE_SIZE = 224
SEQ_LEN = 1024


def measure(short=False):
  """{'cores', 'jpeg': {...}, 'text': {...}, 'tfds_records': {...}} (see the module doc)."""
  return dict(cores=os.cpu_count(), short=short,
              jpeg=measure_jpeg(200 if short else 1000),
              text=measure_text(200 if short else 2000),
              tfds_records=measure_tfds_records(10000 if short else 70000))


# (a) JPEG decode + crop + flip ----------------------------------------------------------

def synthetic_jpegs(count, seed=0, height=375, width=500, quality=90):
  """Photo-like JPEGs: smooth random colour fields plus mild noise."""
  from PIL import Image
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(count):
    coarse = rng.integers(0, 256, (height // 40 + 2, width // 40 + 2, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))
    noisy = np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)
    encoded = io.BytesIO()
    Image.fromarray(noisy).save(encoded, format='JPEG', quality=quality)
    out.append(encoded.getvalue())
  return out


def _transform_all(transform, jpegs, first_key=0):
  for i, data in enumerate(jpegs):
    transform({'image': data}, (0, first_key + i, 0))
  return len(jpegs)


def _rate(transform, jpegs, workers):
  """Examples/s of `transform` over `jpegs`, in `workers` processes (0: this one)."""
  if workers == 0:
    started = time.perf_counter()
    _transform_all(transform, jpegs)
    return len(jpegs) / (time.perf_counter() - started)
  chunks = [jpegs[i::workers] for i in range(workers)]
  context = multiprocessing.get_context('spawn')
  with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
    list(pool.map(_transform_all, [transform] * workers, [c[:2] for c in chunks]))  # warm up
    started = time.perf_counter()
    list(pool.map(_transform_all, [transform] * workers, chunks))
    return len(jpegs) / (time.perf_counter() - started)


def measure_jpeg(count):
  from jaxlab.data import image_transforms
  jpegs = synthetic_jpegs(count)
  workers = os.cpu_count()
  train = image_transforms.TrainImageTransform(IMAGE_SIZE)
  evaluate = image_transforms.EvalImageTransform(IMAGE_SIZE)
  result = dict(images=count, image_shape=[375, 500, 3], output=IMAGE_SIZE, workers=workers,
                mean_jpeg_bytes=int(np.mean([len(j) for j in jpegs])))
  result['train_examples_per_s_1_process'] = _rate(train, jpegs, 0)
  result['eval_examples_per_s_1_process'] = _rate(evaluate, jpegs, 0)
  result['train_examples_per_s_workers'] = _rate(train, jpegs, workers)
  result['train_examples_per_s_per_core'] = result['train_examples_per_s_workers'] / workers
  return result


# (b) text tokenize + pack ---------------------------------------------------------------

def measure_text(num_documents):
  try:
    from jaxlab.data import packing, tokenizers
  except ImportError as error:
    return dict(skipped=f'jaxlab.data.tokenizers / jaxlab.data.packing not available ({error})')
  rng = np.random.default_rng(0)
  words = [''.join(rng.choice(list('abcdefghijklmnopqrstuvwxyz'), rng.integers(2, 10)))
           for _ in range(2000)]
  documents = [' '.join(rng.choice(words, rng.integers(50, 800))) for _ in range(num_documents)]
  tokenizer = tokenizers.ByteTokenizer()
  started = time.perf_counter()
  tokens = [np.asarray(tokenizer.encode(d), np.int32) for d in documents]
  encoded = time.perf_counter()
  packed = packing.pack(tokens, SEQ_LEN, tokenizer.eos_id)
  finished = time.perf_counter()
  count = int(sum(len(t) for t in tokens))
  return dict(documents=num_documents, tokens=count, seq_len=SEQ_LEN,
              rows=int(packed['tokens'].shape[0]),
              encode_tokens_per_s=count / (encoded - started),
              pack_tokens_per_s=count / (finished - encoded),
              tokens_per_s=count / (finished - started))


# (c) TFDS records: serial vs parallel decode, cache vs npz --------------------------------

@functools.lru_cache(maxsize=None)
def _builder_class():
  import tensorflow_datasets as tfds

  class JaxlabBenchFashion(tfds.core.GeneratorBasedBuilder):
    """Fashion-MNIST's features and sizes, filled with synthetic garments."""
    VERSION = tfds.core.Version('1.0.0')

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          'image': tfds.features.Image(shape=(28, 28, 1)),
          'label': tfds.features.ClassLabel(num_classes=10)}), disable_shuffling=True)

    def _split_generators(self, dl_manager):
      del dl_manager
      return {'train': self._generate_examples(0, self.num_train),
              'test': self._generate_examples(1, self.num_test)}

    def _generate_examples(self, seed, count):  # pylint: disable=arguments-differ
      from PIL import Image
      rng = np.random.default_rng(seed)
      for i in range(count):
        image = np.zeros((28, 28), np.uint8)  # a bright blob on black, like Fashion-MNIST
        top, left = rng.integers(0, 8, 2)
        image[top:top + 20, left:left + 20] = rng.integers(0, 256, (20, 20)) // 32 * 32
        encoded = io.BytesIO()
        Image.fromarray(image).save(encoded, format='PNG')
        yield i, {'image': io.BytesIO(encoded.getvalue()), 'label': i % 10}

  return JaxlabBenchFashion


def build_fashion_like(data_dir, num_records):
  builder_class = _builder_class()
  builder_class.num_train = num_records * 6 // 7
  builder_class.num_test = num_records - builder_class.num_train
  builder_class(data_dir=data_dir, file_format='array_record').download_and_prepare()
  return builder_class.name


_SUM_SPLITS = '''
def total(splits):
  from jaxlab.data import sources
  return sum(int(sources.read_rows(s, 0, len(s))['image'].sum(dtype='int64'))
             for s in (splits.train, splits.test))
'''
_LOAD_CACHED = _SUM_SPLITS + '''
import sys, ml_collections
from jaxlab.data import tfds_images
print(total(tfds_images.load(ml_collections.ConfigDict(dict(name=sys.argv[1], data_dir=sys.argv[2],
    cache_dir=sys.argv[3], num_train=None, num_test=None)))))
'''
_LOAD_NPZ = _SUM_SPLITS + '''
import sys, ml_collections
from jaxlab.data import arrays
print(total(arrays.load(ml_collections.ConfigDict(dict(path=sys.argv[1])))))
'''


def _process_seconds(script, *args, repeats=3):
  """The fastest of `repeats` runs of a Python process, start to exit."""
  times = []
  for _ in range(repeats):
    started = time.perf_counter()
    subprocess.run([sys.executable, '-c', script, *map(str, args)], cwd=ROOT, check=True,
                   capture_output=True)
    times.append(time.perf_counter() - started)
  return min(times)


def measure_tfds_records(num_records):
  from jaxlab.data import decoded_cache, tfds_source
  with tempfile.TemporaryDirectory() as tmp:
    data_dir, cache_dir = os.path.join(tmp, 'tfds'), os.path.join(tmp, 'cache')
    started = time.perf_counter()
    name = build_fashion_like(data_dir, num_records)
    result = dict(records=num_records, build_s=time.perf_counter() - started,
                  workers=os.cpu_count())
    train = tfds_source.source(name, 'train', data_dir)
    count = len(train)
    for label, workers in (('serial', 1), ('parallel', None)):
      started = time.perf_counter()
      decoded_cache.decode_rows(train, 0, count, workers=workers)
      result[f'decode_us_per_record_{label}'] = (time.perf_counter() - started) / count * 1e6
    test = tfds_source.source(name, 'test', data_dir)
    started = time.perf_counter()
    rows = {s.split: decoded_cache.cached_rows(s, cache_dir=cache_dir) for s in (train, test)}
    result['cache_write_s'] = time.perf_counter() - started
    result.update(_load_times(train, test, cache_dir, rows, tmp))
    result['process_cached_s'] = _process_seconds(_LOAD_CACHED, name, data_dir, cache_dir)
    result['process_npz_s'] = _process_seconds(_LOAD_NPZ, os.path.join(tmp, 'same.npz'))
    result['process_cached_over_npz'] = result['process_cached_s'] / result['process_npz_s']
  return result


def _load_times(train, test, cache_dir, rows, tmp):
  """In-process: cache hit (memory-mapped, then every byte read) against np.load."""
  from jaxlab.data import decoded_cache
  npz = os.path.join(tmp, 'same.npz')
  np.savez(npz, x_train=rows['train']['image'], y_train=rows['train']['label'],
           x_test=rows['test']['image'], y_test=rows['test']['label'])
  started = time.perf_counter()
  hit = [decoded_cache.cached_rows(s, cache_dir=cache_dir) for s in (train, test)]
  opened = time.perf_counter()
  sum(int(a.sum(dtype=np.int64)) for r in hit for a in r.values())
  touched = time.perf_counter()
  with np.load(npz) as arrays:
    loaded = {k: arrays[k] for k in arrays.files}
  npz_done = time.perf_counter()
  sum(int(a.sum(dtype=np.int64)) for a in loaded.values())
  npz_touched = time.perf_counter()
  return dict(cache_hit_open_s=opened - started, cache_hit_read_all_s=touched - started,
              npz_load_s=npz_done - touched, npz_load_read_all_s=npz_touched - touched)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--short', action='store_true', help='Fewer images and records.')
  parser.add_argument('--out', help='Also write the JSON here.')
  args = parser.parse_args(argv)
  result = measure(args.short)
  text = json.dumps(result, indent=2)
  print(text)
  if args.out:
    with open(args.out, 'w') as f:
      f.write(text + '\n')


if __name__ == '__main__':
  main()
