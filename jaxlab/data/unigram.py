"""The unigram baselines a language model must beat: the entropy of the test tokens
under the training set's token frequencies."""

import numpy as np

from jaxlab.data.packing import target_mask


def target_counts(rows, vocab_size):
  """How often each id occurs as a counted target (see `target_mask`)."""
  targets = np.asarray(rows['tokens'])[:, 1:][target_mask(rows['segment_ids'])]
  return np.bincount(targets, minlength=vocab_size)


def unigram_entropy(rows, vocab_size):
  """Entropy, in nats per target, of the rows' own target distribution."""
  counts = target_counts(rows, vocab_size)
  probs = counts[counts > 0] / counts.sum()
  return float(-(probs * np.log(probs)).sum())


def unigram_baseline(train_rows, test_rows, vocab_size):
  """(cross-entropy in nats per target, perplexity) on the test targets of a unigram
  model of the training targets with add-one smoothing: the loss any language model
  must beat."""
  train_counts = target_counts(train_rows, vocab_size)
  log_probs = np.log((train_counts + 1) / (train_counts.sum() + vocab_size))
  test_counts = target_counts(test_rows, vocab_size)
  nats = float(-(test_counts * log_probs).sum() / test_counts.sum())
  return nats, float(np.exp(nats))
