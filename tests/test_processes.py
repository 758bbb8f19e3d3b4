"""jaxlab.runtime.processes.alive: how abandoned locks, cache entries and sweep trials are found."""

import os
import signal
import subprocess
import sys
import time

from jaxlab.runtime import processes


def test_a_running_process_is_alive_and_a_killed_unreaped_one_is_not():
  child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
  try:
    assert processes.alive(child.pid)
    os.kill(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while processes.alive(child.pid) and time.monotonic() < deadline:
      time.sleep(0.01)
    assert not processes.alive(child.pid)  # a zombie until waited for: not running
  finally:
    child.wait()
  assert not processes.alive(child.pid)  # reaped: gone


def test_an_unreadable_pid_counts_as_running():
  assert processes.alive(os.getpid())
  assert processes.alive(None) and processes.alive('not a pid')
