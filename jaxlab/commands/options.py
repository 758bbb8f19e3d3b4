"""Flag declarations. Each command lists the flags it takes (its FLAGS); a flag shared by
several commands is declared once here, so that a name has one meaning everywhere."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Flag:
  name: str
  kind: str  # string, integer, float, bool, or config (an experiment file; --config.KEY=VALUE)
  default: object
  help: str


CONFIG = Flag('config', 'config', None, 'Experiment config file, e.g. '
              'experiments/digits_cnn.py[:smoke]; --config.KEY=VALUE overrides one field.')
WORKDIR = Flag('workdir', 'string', None, 'The run\'s folder: checkpoints, metrics and plots '
               '(a local folder, gs://bucket/path, s3://bucket/path or az://container/path).')
CHECKPOINT = Flag('checkpoint', 'string', 'best', 'Which checkpoint: best, latest, or a step '
                  'number.')

# Joining a multi-process run, for every command that starts JAX.
MULTI_HOST = (
    Flag('jax_distributed', 'bool', False, 'Call jax.distributed.initialize() first '
         '(auto-detected on Cloud TPU and SLURM); also JAXLAB_DISTRIBUTED=1.'),
    Flag('coordinator_address', 'string', None, 'Multi-host: HOST:PORT of process 0.'),
    Flag('num_processes', 'integer', None, 'Multi-host: number of processes.'),
    Flag('process_id', 'integer', None, 'Multi-host: this process\'s index.'),
    Flag('distributed_timeout', 'integer', 300, 'Multi-host: seconds to wait for all '
         'processes to join before failing.'),
)
