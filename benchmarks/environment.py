"""Where and with what a benchmark ran: date, commit, machine, versions, threads.

Read without importing the frameworks (package metadata, /proc, git), so it costs
nothing and cannot change what it describes.
"""

import datetime
import os
import platform
import subprocess
from importlib import metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'numpy', 'ml-collections',
            'tensorflow', 'tensorflow-cpu', 'keras', 'torch')
# Environment variables that set thread pools (the peers run with the user's environment).
THREAD_VARIABLES = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS',
                    'TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS', 'XLA_FLAGS')


def describe(peer_env):
  """The run's context; `peer_env` is the environment the peers were started with."""
  return dict(
      date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      git=git(),
      machine=machine(),
      versions=versions(),
      thread_settings={name: peer_env[name] for name in THREAD_VARIABLES if name in peer_env},
      gpus=gpus())


def git():
  def run(*args):
    try:
      result = subprocess.run(['git', *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=30, check=False)
    except OSError:
      return None
    return result.stdout.strip() if result.returncode == 0 else None
  status = run('status', '--porcelain', '--untracked-files=no')
  return dict(commit=run('rev-parse', 'HEAD'), branch=run('rev-parse', '--abbrev-ref', 'HEAD'),
              dirty=bool(status) if status is not None else None)


def machine():
  return dict(cpu_model=_cpu_model(), logical_cpus=os.cpu_count(),
              usable_cpus=len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
              else None,
              memory_gib=_memory_gib(), platform=platform.platform(),
              python=platform.python_version())


def versions():
  found = {}
  for name in PACKAGES:
    try:
      found[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      pass
  return found


def load_average():
  """The 1-minute load average: above the core count, other work shared the machine."""
  try:
    return os.getloadavg()[0]
  except OSError:
    return None


def gpus():
  try:
    result = subprocess.run(['nvidia-smi', '--query-gpu=name,memory.total,driver_version',
                             '--format=csv,noheader'], capture_output=True, text=True,
                            timeout=30, check=False)
  except OSError:
    return []
  return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def _cpu_model():
  try:
    with open('/proc/cpuinfo') as cpuinfo:
      for line in cpuinfo:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or None


def _memory_gib():
  try:
    with open('/proc/meminfo') as meminfo:
      for line in meminfo:
        if line.startswith('MemTotal:'):
          return round(int(line.split()[1]) / 2**20, 1)
  except OSError:
    pass
  return None
