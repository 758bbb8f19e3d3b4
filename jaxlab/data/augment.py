"""On-device data augmentation: pure functions of (images, key)."""

import jax
import jax.numpy as jnp


def random_flip(images_BxHxWxC, key):
  flip = jax.random.bernoulli(key, 0.5, (images_BxHxWxC.shape[0], 1, 1, 1))
  return jnp.where(flip, images_BxHxWxC[:, :, ::-1, :], images_BxHxWxC)


def random_crop(images_BxHxWxC, key, padding=4):
  """Pads by `padding` pixels (zeros) and crops back to size at a random offset."""
  batch, height, width, _ = images_BxHxWxC.shape
  padded = jnp.pad(images_BxHxWxC, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  offsets = jax.random.randint(key, (batch, 2), 0, 2 * padding + 1)
  crop = lambda image, offset: jax.lax.dynamic_slice(
      image, (offset[0], offset[1], 0), (height, width, image.shape[-1]))
  return jax.vmap(crop)(padded, offsets)


AUGMENTATIONS = {'flip': random_flip, 'crop': random_crop}


def apply(names, images, key):
  for index, name in enumerate(names):
    images = AUGMENTATIONS[name](images, jax.random.fold_in(key, index))
  return images
