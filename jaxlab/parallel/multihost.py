"""Joining a multi-process run with jax.distributed (Cloud TPU, SLURM, or explicit)."""

import os
import sys
import threading

from jaxlab.errors import UserError

ENV_FLAG = 'JAXLAB_DISTRIBUTED'


def wanted(distributed, coordinator):
  return bool(distributed or coordinator or os.environ.get(ENV_FLAG, '') not in ('', '0'))


def initialize(distributed, coordinator, num_processes, process_id, timeout):
  """Calls jax.distributed.initialize when asked; a peer that never joins is an
  error after `timeout` seconds, not a hang."""
  if not wanted(distributed, coordinator):
    return
  import jax
  kwargs = {}
  if coordinator:
    if num_processes is None or process_id is None:
      raise UserError('--coordinator_address needs --num_processes and --process_id too '
                      '(e.g. --coordinator_address=10.0.0.2:1234 --num_processes=2 '
                      '--process_id=0).')
    kwargs = dict(coordinator_address=coordinator, num_processes=num_processes,
                  process_id=process_id)
  message = (
      f'Could not join the multi-process run within --distributed_timeout={timeout} seconds. '
      f'Check that all {num_processes or "the"} processes were started with the same '
      '--coordinator_address and distinct --process_id values, that the coordinator port is '
      'reachable from every host, and that they start within the timeout of each other.')
  # JAX aborts the whole process when peers are missing at the deadline; say why first.
  watchdog = threading.Timer(max(timeout - 1.0, 0.5), _give_up, args=(message,))
  watchdog.daemon = True
  watchdog.start()
  try:
    jax.distributed.initialize(initialization_timeout=timeout, **kwargs)
  except (RuntimeError, ValueError) as error:
    raise UserError(f'{message} ({str(error).splitlines()[0]})') from None
  finally:
    watchdog.cancel()


def _give_up(message):
  print(f'jaxlab: error: {message}', file=sys.stderr, flush=True)
  os._exit(2)  # pylint: disable=protected-access


def any_process(flag):
  """True on every process if `flag` is true on any (a collective: all must call it)."""
  import jax
  if jax.process_count() == 1:
    return bool(flag)
  import numpy as np
  from jax.experimental import multihost_utils
  return bool(np.any(multihost_utils.process_allgather(np.asarray(flag, np.int32))))


def total(count):
  """The sum of an integer over every process (collective)."""
  import jax
  if jax.process_count() == 1:
    return int(count)
  import numpy as np
  from jax.experimental import multihost_utils
  return int(np.sum(multihost_utils.process_allgather(np.asarray(count, np.int64))))


def all_agree(flag):
  """True on every process if `flag` is true on all of them (collective)."""
  return not any_process(not flag)


def barrier(name):
  """Waits for every process (no-op with one)."""
  import jax
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)
