"""A progress bar (step, loss, steps/s, MFU, ETA) on terminals; plain log lines elsewhere."""

import sys
import time


class Progress:

  def __init__(self, total_steps, initial_step, enabled=True, describe_rate=None):
    """`describe_rate(steps_per_second)` adds to each line, e.g. 'TFLOP/s, MFU'."""
    self._describe_rate = describe_rate
    self._total, self._last_step, self._last_time = total_steps, initial_step, time.perf_counter()
    self._bar = None
    if enabled and sys.stderr.isatty():
      from tqdm import tqdm
      self._bar = tqdm(total=total_steps, initial=initial_step, unit='step', dynamic_ncols=True)
    self._enabled = enabled

  def update(self, step, loss):
    now = time.perf_counter()
    rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
    if self._bar is not None:
      self._bar.update(step - self._bar.n)
      self._bar.set_postfix_str(f'loss={loss:.4f}' + self._rate_text(rate, ', '))
    elif self._enabled:
      eta = (self._total - step) / rate if rate > 0 else float('inf')
      print(f'step {step}/{self._total}  loss {loss:.4f}  {rate:.1f} steps/s'
            f'{self._rate_text(rate, "  ")}  ETA {eta:.0f}s', flush=True)
    self._last_step, self._last_time = step, now

  def restart_clock(self):
    """Rates count from now (not from start-up and compilation)."""
    self._last_time = time.perf_counter()

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
