"""Durations in the unit a researcher thinks in, converted to steps in one place."""

import math


def total_steps(config, steps_per_epoch):
  """Training length in steps, from num_steps if set, else from num_epochs."""
  if config.num_steps:
    return int(config.num_steps)
  return int(math.ceil(config.num_epochs * steps_per_epoch))


def warmup_steps(optimizer_config, num_steps):
  """Warmup in steps, from warmup_steps if set, else from warmup_percent."""
  if optimizer_config.warmup_steps:
    return int(optimizer_config.warmup_steps)
  return int(num_steps * optimizer_config.warmup_percent / 100)
