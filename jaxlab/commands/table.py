"""The command table: every `jaxlab` command, its synopsis and what it does, in one line.

A command module (jaxlab/commands/<name>.py, or the name MODULES gives) declares USAGE
(synopsis lines), FLAGS (the jaxlab.commands.options.Flag it takes), POSITIONAL (what its
positional arguments are, or None if it takes none) and `run(args) -> int`. Modules are
imported only when their command runs, so `jaxlab --help` imports none of them.
"""

import importlib

COMMANDS = {  # name: (the essential flags, what it does)
    'train': ('--config=experiments/NAME.py --workdir=DIR',
              'train; a rerun resumes (--dry_run: compile only)'),
    'eval': ('--workdir=DIR', 'evaluate a checkpoint on the test set'),
    'predict': ('--workdir=DIR FILE ...', 'predictions for image, text, WAV or table (CSV, Parquet) files'),
    'sample': ('--workdir=DIR --prompt=TEXT', 'continue a prompt with a language model'),
    'export': ('--workdir=DIR --out=DIR', 'StableHLO or a SavedModel, to run without jaxlab'),
    'serve': ('--workdir=DIR', 'predictions (and generation) over HTTP, batched'),
    'quantize': ('--workdir=DIR', 'an int8 copy of the model, compared with it'),
    'explain': ('--workdir=DIR IMAGE ...', 'which pixels an image classifier looks at'),
    'sweep': ('--config=experiments/X.py --sweep=experiments/sweeps/Y.py',
              'an Optuna search, each trial a run'),
    'import': ('--source=HF_DIR --workdir=NEW_DIR',
               'a Hugging Face checkpoint (safetensors) as a new workdir'),
    'bench': ('', 'the benchmark suite (from a source checkout)'),
}
MODULES = {'import': 'import_'}  # a command named by a Python keyword: its module's name
DEFAULT = 'train'  # what `jaxlab` runs without a command (`python -m jaxlab.main --config=...`)


def module(name):
  return importlib.import_module(f'jaxlab.commands.{MODULES.get(name, name)}')


def overview():
  """`jaxlab --help`: one line per command."""
  synopses = {name: f'jaxlab {name} {flags}'.rstrip() for name, (flags, _) in COMMANDS.items()}
  width = min(max(map(len, synopses.values())), 52)  # a longer one pushes its own comment
  lines = [f'  {synopses[name]:<{width}}  # {summary}'
           for name, (_, summary) in COMMANDS.items()]
  return '\n'.join([
      'jaxlab: train, evaluate and predict with Flax models from ml-collections configs.',
      '',
      'Usage: one command per line; add --help to one for all its flags (`jaxlab eval --help`).',
      *lines,
      '',
      'A run lives in one folder, --workdir=DIR (local, gs://, s3:// or az://): train writes',
      'it, the other commands read it. `python -m jaxlab.main` is the same program; without',
      'a command it trains.',
  ])
