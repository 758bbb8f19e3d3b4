"""Whether a process of this host still runs: how a lock, a cache entry or a sweep trial
left by a killed process is recognised as abandoned."""

import os


def alive(pid):
  """True if process `pid` runs on this host. A zombie (killed, not yet reaped by its
  parent) does not; a pid that cannot be read (None, not a number) or that belongs to
  another user counts as running, so nothing of a live process is taken over."""
  try:
    pid = int(pid)
  except (TypeError, ValueError):
    return True
  try:
    with open(f'/proc/{pid}/stat') as f:
      return f.read().rsplit(')', 1)[1].split()[0] not in ('Z', 'X')
  except FileNotFoundError:
    return False
  except OSError:  # no /proc (macOS): ask the kernel
    try:
      os.kill(pid, 0)
    except ProcessLookupError:
      return False
    except PermissionError:
      return True
    return True
