"""A progress bar on terminals, plain log lines elsewhere: one per train record.

A line shows the record that metrics.jsonl and TensorBoard receive at that step, under
the same names: train/loss is the mean over the steps since the previous record (as
the line says), and the pace is the record's train/steps_per_second.
"""

import sys


class Progress:

  def __init__(self, total_steps, initial_step, enabled=True, describe_rate=None):
    """`describe_rate(steps_per_second)` adds to each line, e.g. 'TFLOP/s, MFU'."""
    self._describe_rate = describe_rate
    self._total = total_steps
    self._bar = None
    if enabled and sys.stderr.isatty():
      from tqdm import tqdm
      self._bar = tqdm(total=total_steps, initial=initial_step, unit='step', dynamic_ncols=True)
    self._enabled = enabled

  def record(self, step, first_step, loss, steps_per_second):
    """Shows the train record of `step`: `loss` is its mean over steps first_step..step."""
    mean = f'train/loss {loss:.4f} ({_steps_text(first_step, step)})'
    if self._bar is not None:
      self._bar.update(step - self._bar.n)
      self._bar.set_postfix_str(f'{mean}{self._rate_text(steps_per_second, ", ")}')
    elif self._enabled:
      eta = (self._total - step) / steps_per_second if steps_per_second > 0 else float('inf')
      print(f'step {step}/{self._total}  {mean}  {steps_per_second:.1f} steps/s'
            f'{self._rate_text(steps_per_second, "  ")}  ETA {eta:.0f}s', flush=True)

  def advance(self, step):
    """Moves the bar to `step` (a block that ended without a train record)."""
    if self._bar is not None:
      self._bar.update(step - self._bar.n)

  def _rate_text(self, rate, separator):
    return separator + self._describe_rate(rate) if self._describe_rate and rate > 0 else ''

  def write(self, message):
    if self._bar is not None:
      self._bar.write(message)
    elif self._enabled:
      print(message, flush=True)

  def close(self):
    if self._bar is not None:
      self._bar.close()


def _steps_text(first, last):
  return f'step {last}' if first == last else f'mean of steps {first}-{last}'
