"""XLA:CPU options that make training fast on CPUs, applied only where the user set none.

Why: this jaxlib routes CPU convolutions through an experimental fusion library (YNN)
that keeps only part of the cores busy; the Eigen runtime uses them all (the Flax MNIST
CNN's step: 69 -> 50 ms on 2 cores). Dots stay on YNN, which was as fast or faster.

FAST_COMPILE_FLAGS trade step time for compile time, for processes that compile many
programs and run each briefly (the test suite): fusions go through XLA's classic LLVM
emitters instead of its MLIR fusion emitters. Programs compile in about half the time
(digits_cnn's train block: 1.31 -> 0.71 s; the Transformer LM's: 1.60 -> 1.03 s on 2 cores)
with the same results and LM/MLP step times, but convolution steps run 6-15% slower
(mnist_cnn, ResNet-18), so they are not a default. LLVM at -O1 instead of -O2 takes another
10-25% off train blocks (ResNet-18 smoke: 3.23 -> 2.50 s; the CTC speech model's two
buckets: 5.80 -> 4.44 s) and most of a model's random initialisers when a test compiles
them itself (a width-4 ResNet-18's: 15.2 -> 1.4 s; jaxlab's own init is compiled at -O1
already, jaxlab.train.state.create).
"""

import os
import subprocess
import sys

CPU_FLAGS = ('--xla_cpu_experimental_ynn_fusion_type=-individual_convolution',)
FAST_COMPILE_FLAGS = ('--xla_cpu_use_fusion_emitters=false', '--xla_backend_optimization_level=1')
DISABLE_ENV = 'JAXLAB_NO_XLA_DEFAULTS'


def apply_cpu_defaults(flags=CPU_FLAGS):
  """Adds `flags` to XLA_FLAGS unless the user set XLA options of the same name,
  asked us not to, or this jaxlib does not know them (checked once, in a child process)."""
  if os.environ.get(DISABLE_ENV) or 'jax' in sys.modules and _backend_started():
    return
  current = os.environ.get('XLA_FLAGS', '')
  wanted = [flag for flag in flags if flag.split('=')[0] not in current]
  if wanted and _accepted(wanted):
    os.environ['XLA_FLAGS'] = ' '.join([current, *wanted]).strip()


def _backend_started():
  from jax._src import xla_bridge  # pylint: disable=protected-access
  return bool(getattr(xla_bridge, '_backends', None))


def _accepted(flags):
  """An unknown XLA flag aborts the process, so probe in a child first (cached)."""
  marker = os.path.join(os.path.expanduser('~'), '.cache', 'jaxlab', 'xla_flags_ok')
  key = _jaxlib_version() + ' ' + ' '.join(flags)
  if os.path.exists(marker) and open(marker).read() == key:
    return True
  env = dict(os.environ, XLA_FLAGS=' '.join([os.environ.get('XLA_FLAGS', ''), *flags]),
             JAX_PLATFORMS='cpu')
  probe = subprocess.run([sys.executable, '-c', 'import jax; jax.numpy.zeros(1).block_until_ready()'],
                         env=env, capture_output=True, timeout=120, check=False)
  if probe.returncode != 0:
    return False
  os.makedirs(os.path.dirname(marker), exist_ok=True)
  with open(marker, 'w') as f:
    f.write(key)
  return True


def _jaxlib_version():
  from importlib import metadata
  try:
    return metadata.version('jaxlib')
  except metadata.PackageNotFoundError:
    return 'unknown'
