"""Your-files test data, written by the tests: scikit-learn's digits as image folders
(PNG and JPEG files via Pillow), tables (CSV, Parquet via pyarrow), text files, and
`datasets` datasets saved with save_to_disk."""

import io
import json
import pathlib

import numpy as np
from PIL import Image


def digit_images(count_per_class=20, classes=(0, 1, 2), size=16):
  """{digit: [uint8 (size, size) images]}: digits scaled to 0..255 and enlarged."""
  from sklearn import datasets
  digits = datasets.load_digits()
  found = {}
  for digit in classes:
    images = digits.images[digits.target == digit][:count_per_class]
    found[digit] = [np.asarray(Image.fromarray((image * 255 / 16).astype(np.uint8)).resize(
        (size, size), Image.Resampling.BILINEAR)) for image in images]
  return found


def write_image_folder(root, count_per_class=20, classes=(0, 1, 2), names=None):
  """root/<name>/<i>.jpg or .png (alternating); returns {path: class name}."""
  root = pathlib.Path(root)
  written = {}
  for digit, images in digit_images(count_per_class, classes).items():
    name = names[digit] if names else f'digit_{digit}'
    (root / name).mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
      path = root / name / (f'{index}.jpg' if index % 2 else f'{index}.png')
      Image.fromarray(image).convert('RGB').save(path)
      written[str(path)] = name
  return written


def encoded_png(image):
  out = io.BytesIO()
  Image.fromarray(image).save(out, format='PNG')
  return out.getvalue()


def write_jsonl(path, records):
  with open(path, 'w', encoding='utf-8') as f:
    for record in records:
      f.write(json.dumps(record) + '\n')


def people_table(count=200, seed=0):
  """A pyarrow Table: 'age' (float, ~10% missing), 'city' (str, ~10% missing), 'rooms'
  (int), 'income' (float: the regression label), 'kind' (str: a class label)."""
  import pyarrow as pa
  rng = np.random.default_rng(seed)
  age = rng.normal(40, 10, count)
  rooms = rng.integers(1, 6, count)
  city = rng.choice(['Lyon', 'Oslo', 'Rome'], count).astype(object)
  income = 1000 * age + 5000 * rooms + np.where(city == 'Oslo', 20000, 0) + rng.normal(0, 500,
                                                                                        count)
  age[rng.random(count) < 0.1] = np.nan
  city[rng.random(count) < 0.1] = None
  return pa.table({'age': pa.array(age, from_pandas=True), 'city': pa.array(list(city)),
                   'rooms': rooms, 'income': income,
                   'kind': np.where(income > np.median(income), 'high', 'low')})
