"""Process set-up before the first JAX computation: XLA options, the persistent
compilation cache, and joining a multi-process run."""

import atexit
import gc
import os

CACHE_DIR_ENV = 'JAXLAB_COMPILATION_CACHE'
DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser('~'), '.cache', 'jaxlab', 'xla')


def enable_compilation_cache():
  """Compiled programs are kept on disk ($JAXLAB_COMPILATION_CACHE, empty: off), so a
  second run of the same config skips compilation."""
  import jax
  cache_dir = os.environ.get(CACHE_DIR_ENV, DEFAULT_CACHE_DIR)
  if cache_dir:
    jax.config.update('jax_compilation_cache_dir', cache_dir)
    # A run compiles a dozen programs of 0.1-0.5 s each on a CPU (the state's init, the
    # permutation, the blocks, the evaluation); reading one back takes milliseconds.
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.1)
    jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)


def setup(distributed=False, coordinator=None, num_processes=None, process_id=None,
          timeout=300):
  """Call once per process, before any JAX computation."""
  # At exit the interpreter's last garbage collections walk every object of JAX, Flax,
  # Orbax, TensorBoard and matplotlib: half a second after the run is over. Frozen
  # objects are skipped; the operating system reclaims the memory anyway.
  atexit.register(gc.freeze)
  from jaxlab import storage
  storage.configure()
  from jaxlab.runtime import xla_options
  xla_options.apply_cpu_defaults()
  enable_compilation_cache()
  from jaxlab.parallel import multihost
  multihost.initialize(distributed, coordinator, num_processes, process_id, timeout)
