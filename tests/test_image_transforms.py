"""Host image transforms: JPEG decode, Inception crop, center crop, flip."""

import io
import pickle

import numpy as np
import pytest
from PIL import Image

from jaxlab.data import image_transforms, sources


def _jpeg(height=375, width=500, seed=0, quality=90):
  rng = np.random.default_rng(seed)
  coarse = rng.integers(0, 256, (height // 25 + 1, width // 25 + 1, 3), dtype=np.uint8)
  image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
  encoded = io.BytesIO()
  image.save(encoded, format='JPEG', quality=quality)
  return encoded.getvalue()


def test_decode_jpeg_full_and_drafted():
  data = _jpeg()
  full = image_transforms.decode_jpeg(data)
  assert full.shape == (375, 500, 3) and full.dtype == np.uint8
  small = image_transforms.decode_jpeg(data, min_size=(90, 120))
  assert small.shape == (94, 125, 3)  # 1/4 scale: the smallest at least 90 x 120


def test_broken_jpeg_raises_bad_record():
  data = _jpeg()
  for broken in (b'not an image', data[:len(data) // 3]):
    with pytest.raises(sources.BadRecord):
      image_transforms.decode_jpeg(broken)
    with pytest.raises(sources.BadRecord):
      image_transforms.TrainImageTransform(64)({'image': broken}, (0, 0, 0))


def test_train_transform_is_a_function_of_the_key():
  transform = image_transforms.TrainImageTransform(64)
  example = {'image': _jpeg(), 'label': np.int32(3)}
  first = transform(example, (7, 100, 2))
  again = pickle.loads(pickle.dumps(transform))(example, (7, 100, 2))
  other = transform(example, (7, 101, 2))
  assert first['image'].shape == (64, 64, 3) and first['image'].dtype == np.uint8
  assert first['label'] == 3
  np.testing.assert_array_equal(first['image'], again['image'])
  assert not np.array_equal(first['image'], other['image'])


def test_crops_stay_within_the_image_and_in_range():
  rng = np.random.default_rng(0)
  for _ in range(500):
    height, width = rng.integers(20, 600, size=2)
    top, left, h, w = image_transforms.sample_crop(int(height), int(width), rng)
    assert 0 <= top and top + h <= height and 0 <= left and left + w <= width
    assert h > 0 and w > 0
  # An image too elongated for any in-range crop falls back to a centered one.
  assert image_transforms.sample_crop(10, 1000, rng) == (0, 493, 10, 13)


def test_random_resized_crop_of_arrays_and_center_crop():
  image = np.arange(40 * 60 * 3, dtype=np.uint32).reshape(40, 60, 3).astype(np.uint8)
  cropped = image_transforms.random_resized_crop(image, 16, np.random.default_rng(1))
  assert cropped.shape == (16, 16, 3)
  gray = np.zeros((40, 60, 1), np.uint8)
  assert image_transforms.random_resized_crop(gray, 16, np.random.default_rng(1)).shape == (
      16, 16, 1)
  # A constant image with a marked center: the center crop keeps the mark, centred.
  marked = np.zeros((64, 96, 3), np.uint8)
  marked[28:36, 44:52] = 255
  center = image_transforms.center_crop_resize(marked, 32)
  assert center.shape == (32, 32, 3)
  assert center[16, 16].min() > 200 and center[0, 0].max() == 0


def test_eval_transform_matches_center_crop_of_the_decoded_image():
  data = _jpeg()
  out = image_transforms.EvalImageTransform(224)({'image': data}, None)['image']
  reference = image_transforms.center_crop_resize(image_transforms.decode_jpeg(data), 224)
  assert out.shape == (224, 224, 3)
  assert np.abs(out.astype(int) - reference.astype(int)).mean() < 3  # same up to resampling


def test_flip_flips():
  image = np.arange(2 * 3 * 1).reshape(2, 3, 1)
  outcomes = {bool(np.array_equal(image_transforms.random_flip(image, np.random.default_rng(s)),
                                  image[:, ::-1])) for s in range(20)}
  assert outcomes == {True, False}
  transform = image_transforms.TrainImageTransform(32, area_range=(1.0, 1.0),
                                                   aspect_range=(1.0, 1.0))
  square = {'image': _jpeg(64, 64)}
  unflipped = image_transforms.TrainImageTransform(32, flip=False, area_range=(1.0, 1.0),
                                                   aspect_range=(1.0, 1.0))(square, (0,))
  results = [transform(square, (s,))['image'] for s in range(10)]
  assert any(np.array_equal(r, unflipped['image'][:, ::-1]) for r in results)
  assert any(np.array_equal(r, unflipped['image']) for r in results)


def test_draft_decoding_stays_close_to_full_decoding():
  """The crop is drawn before decoding; drafting changes only the resampling."""
  data = _jpeg(1200, 1600)
  box = (100, 200, 800, 900)
  image = Image.open(io.BytesIO(data))
  image.draft('RGB', (1600 * 64 // 900 + 1, 1200 * 64 // 800 + 1))
  assert image.size[0] < 1600  # drafted
  drafted = image_transforms._crop_encoded(data, 64, lambda h, w: box)
  full = image_transforms._resize_box(Image.open(io.BytesIO(data)).convert('RGB'), box, 64, 3)
  assert np.abs(drafted.astype(int) - full.astype(int)).mean() < 4
