"""Joining a multi-process run with jax.distributed (Cloud TPU, SLURM, or explicit)."""

import os

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
  try:
    jax.distributed.initialize(initialization_timeout=timeout, **kwargs)
  except (RuntimeError, ValueError) as error:
    raise UserError(
        f'Could not join the multi-process run: {str(error).splitlines()[0]}. Check that all '
        f'{num_processes or "the"} processes were started with the same --coordinator_address '
        f'and distinct --process_id values, that the coordinator port is reachable, and that '
        f'they start within --distributed_timeout={timeout} seconds of each other.') from None
