"""What several commands share: the workdir flag's check, the runtime start, and
refusing positional arguments where a command takes none."""

from jaxlab.errors import UserError


def workdir(args):
  """The --workdir value, checked now (a bad bucket fails before compiling)."""
  if not args.workdir:
    raise UserError('No --workdir given: pass --workdir=DIR (a local folder, gs://bucket/path, '
                    's3://bucket/path or az://container/path) for checkpoints, metrics and plots.')
  from jaxlab import storage  # pylint: disable=g-import-not-at-top
  try:
    storage.validate_workdir(args.workdir)
  except storage.StorageError as error:
    raise UserError(str(error)) from None
  return args.workdir


def no_positional(name, args, hint=''):
  if args.positional:
    raise UserError(f'{name} takes no positional arguments, got {args.positional}{hint}.')


def start_runtime(args):
  """XLA options, the compilation cache, and joining a multi-process run."""
  from jaxlab.runtime import setup  # pylint: disable=g-import-not-at-top
  setup.setup(distributed=args.jax_distributed, coordinator=args.coordinator_address,
              num_processes=args.num_processes, process_id=args.process_id,
              timeout=args.distributed_timeout)
