"""The resolved config in a workdir's config.json: written by training, read back by
every command that loads a trained run."""

import json
import posixpath

import ml_collections

from jaxlab import storage
from jaxlab.config.fields import defaults
from jaxlab.errors import UserError
from jaxlab.workdir import files as workdir_files

CONFIG_FILE_NAME = workdir_files.CONFIG


def save(config, workdir):
  """Writes the resolved config as JSON into the workdir."""
  storage.write_text(posixpath.join(workdir, CONFIG_FILE_NAME),
                     config.to_json_best_effort(indent=2, sort_keys=True) + '\n')


def load_from_workdir(workdir):
  """The config a run in this workdir was trained with."""
  path = posixpath.join(workdir, CONFIG_FILE_NAME)
  if not storage.exists(path):
    raise UserError(
        f'No {CONFIG_FILE_NAME} in workdir {workdir}: it is not a jaxlab training '
        'directory. Train first with `jaxlab train --config=... '
        f'--workdir={workdir}`, or point --workdir at an existing run.')
  config = defaults()  # fields added since the run was trained take their defaults
  _merge(config, json.loads(storage.read_text(path)))
  return config


def _merge(config, record):
  for key, value in record.items():
    if isinstance(value, dict) and isinstance(config.get(key), ml_collections.ConfigDict):
      _merge(config[key], value)
    else:
      config[key] = value
