"""DP-SGD inside the compiled step (Abadi et al. 2016): each step samples its batch on
the device, computes every example's gradient with `jax.vmap`, clips each to
`l2_clip_norm`, sums them, adds Gaussian noise of std `noise_multiplier *
l2_clip_norm` and divides by the expected batch size. The privacy budget of this
mechanism is `jaxlab.privacy.accounting`'s.

Sampling draws from the step's key, so a resumed run draws the same batches:
- 'poisson': every example joins the batch independently with rate q = B / N. The
  sample is held in a fixed-size batch of `physical_batch_size` rows (B plus a margin
  that a Binomial(N, q) count exceeds with probability < 1e-9); rows past the sample are
  masked out. Examples beyond the margin would be dropped: `dp_dropped` counts them.
- 'fixed': B examples drawn uniformly without replacement, independently each step.
"""

import dataclasses

import jax
import jax.numpy as jnp

from jaxlab.train import step as step_lib

OVERFLOW_PROBABILITY = 1e-9  # per step, that a Poisson sample exceeds the physical batch


@dataclasses.dataclass(frozen=True)
class DpSgd:
  clip_norm: float
  noise_multiplier: float
  sampling: str  # 'poisson' or 'fixed'
  num_examples: int  # N, the training set
  batch_size: int  # B: the expected (poisson) or exact (fixed) batch size

  @classmethod
  def from_config(cls, config, num_examples):
    c = config.privacy
    return cls(float(c.l2_clip_norm), float(c.noise_multiplier), c.sampling, int(num_examples),
               int(config.data.batch_size))

  @property
  def physical_batch_size(self):
    if self.sampling == 'fixed':
      return self.batch_size
    from scipy import stats
    q = self.batch_size / self.num_examples
    return int(min(self.num_examples, stats.binom.isf(OVERFLOW_PROBABILITY, self.num_examples, q) + 1))

  def sample(self, key):
    """(indices_P, mask_P, dropped): the rows of this step's batch."""
    n, size = self.num_examples, self.physical_batch_size
    if self.sampling == 'fixed':
      return (jax.random.choice(key, n, (size,), replace=False), jnp.ones((size,), jnp.float32),
              jnp.zeros((), jnp.int32))
    chosen_N = jax.random.uniform(key, (n,)) < self.batch_size / n
    (indices_P,) = jnp.nonzero(chosen_N, size=size, fill_value=0)
    count = chosen_N.sum()
    return indices_P, (jnp.arange(size) < count).astype(jnp.float32), jnp.maximum(count - size, 0)

  def grads(self, loss_function, params, model_state, batch, key):
    """((loss, (model_state, metrics)), noisy mean of the clipped per-example gradients),
    in the form of `jax.value_and_grad(loss_function, has_aux=True)`."""
    batch = dict(batch)
    mask_P = batch.pop('mask')
    dropped = batch.pop('dp_dropped')

    # Separate streams: examples' dropout/augmentation keys (5), the noise (3), the sample
    # (4, drawn in train_block); the loss itself folds 0-2 into the key it is given.
    example_key = jax.random.fold_in(key, 5)

    def one_example(example, index):
      single = jax.tree.map(lambda a: a[None], example)  # a batch of one
      (loss, (_, metrics)), grads = jax.value_and_grad(loss_function, has_aux=True)(
          params, model_state, single, jax.random.fold_in(example_key, index))
      norm = step_lib.global_norm(grads)
      scale = jnp.minimum(1.0, self.clip_norm / jnp.maximum(norm, 1e-12))
      return loss, metrics, jax.tree.map(lambda g: g * scale, grads), norm

    losses_P, metrics_P, grads_P, norms_P = jax.vmap(one_example)(
        batch, jnp.arange(mask_P.shape[0]))
    summed = jax.tree.map(lambda g: jnp.tensordot(mask_P, g, axes=1), grads_P)
    noise_key = jax.random.fold_in(key, 3)
    leaves, treedef = jax.tree.flatten(summed)
    noisy = [leaf + self.noise_multiplier * self.clip_norm *
             jax.random.normal(jax.random.fold_in(noise_key, i), leaf.shape, leaf.dtype)
             for i, leaf in enumerate(leaves)]
    # Divided by the expected size, not the drawn one, which would reveal the sample.
    grads = jax.tree.map(lambda g: g / self.batch_size, jax.tree.unflatten(treedef, noisy))
    real = jnp.maximum(mask_P.sum(), 1)
    mean = lambda values_P: jnp.tensordot(mask_P, values_P, axes=1) / real
    metrics = {name: mean(values) for name, values in metrics_P.items()}
    metrics.update(dp_clipped_fraction=mean((norms_P > self.clip_norm).astype(jnp.float32)),
                   dp_batch_size=mask_P.sum(), dp_dropped=dropped.astype(jnp.float32))
    return (mean(losses_P), (model_state, metrics)), grads
