"""The train progress, one report per train record (the command line shows a bar on a
terminal, plain lines elsewhere: jaxlab/commands/console.py).

A line shows the record that metrics.jsonl and TensorBoard receive at that step, under
the same names: train/loss is the mean over the steps since the previous record (as
the line says), and the pace is the record's train/steps_per_second.
"""

from jaxlab.runtime import messages


class Progress:

  def __init__(self, total_steps, initial_step, enabled=True, describe_rate=None):
    """`describe_rate(steps_per_second)` adds to each line, e.g. 'TFLOP/s, MFU'."""
    self._describe_rate = describe_rate
    self._total = total_steps
    self._initial = initial_step
    self._enabled = enabled

  def record(self, step, first_step, loss, steps_per_second):
    """Reports the train record of `step`: `loss` is its mean over steps first_step..step."""
    if not self._enabled:
      return
    mean = f'train/loss {loss:.4f} ({_steps_text(first_step, step)})'
    eta = (self._total - step) / steps_per_second if steps_per_second > 0 else float('inf')
    messages.progress(f'step {step}/{self._total}  {mean}  {steps_per_second:.1f} steps/s'
                      f'{self._rate_text(steps_per_second, "  ")}  ETA {eta:.0f}s',
                      step, self._total, self._initial,
                      f'{mean}{self._rate_text(steps_per_second, ", ")}')

  def advance(self, step):
    """Moves a progress bar to `step` (a block that ended without a train record)."""
    if self._enabled:
      messages.progress('', step, self._total, self._initial, '')

  def _rate_text(self, rate, separator):
    return separator + self._describe_rate(rate) if self._describe_rate and rate > 0 else ''

  def write(self, message):
    if self._enabled:
      messages.say(message)

  def close(self):
    if self._enabled:
      messages.progress_done()


def _steps_text(first, last):
  return f'step {last}' if first == last else f'mean of steps {first}-{last}'
