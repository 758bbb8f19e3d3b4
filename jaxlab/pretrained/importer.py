"""`jaxlab import`: a Hugging Face checkpoint folder as a jaxlab workdir.

The workdir holds the resolved config (config.json), the input description with the
tokenizer's spec (dataset_info.json), the tokenizer file, import.json (where it came from
and what could not be carried over) and a step-0 checkpoint in the layout `jaxlab train`
writes (parameters and model state; no optimizer state, which fine-tuning starts fresh).
So `jaxlab eval/predict/sample/export` read it, and a fine-tuning run starts from it.

Nothing is written half: the checkpoint is checked from its headers, loaded, and written
into a temporary folder beside the workdir that is renamed into place only when complete.
"""

import json
import math
import os
import shutil
import time

import jax
import jax.numpy as jnp

from jaxlab import config as config_lib
from jaxlab import data as data_lib
from jaxlab import storage
from jaxlab.checkpoint import digest
from jaxlab.checkpoint import manager as checkpoint_lib
from jaxlab.errors import UserError
from jaxlab.models import modeling
from jaxlab.pretrained import loading, tokenizer_files

REPORT = 'import.json'


def run_import(source, workdir):
  """Imports `source` into the new local folder `workdir`; returns import.json's record."""
  started = time.perf_counter()
  workdir = _new_local_folder(workdir)
  the_plan = loading.plan(source)  # headers only: a bad checkpoint fails here
  mesh = loading.import_mesh()
  _, layout = loading.layout(the_plan, mesh)
  loading.check(the_plan, layout.shapes)
  staging = f'{workdir}.importing-{os.getpid()}'
  shutil.rmtree(staging, ignore_errors=True)
  os.makedirs(staging)
  try:
    record = _write(the_plan, layout, staging)
    record['seconds'] = round(time.perf_counter() - started, 2)
    _write_json(os.path.join(staging, REPORT), record)
    os.rename(staging, workdir)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return record


def _new_local_folder(workdir):
  if not workdir:
    raise UserError('jaxlab import needs --workdir=DIR, the new folder to write the model to.')
  if '://' in workdir:
    raise UserError(f'--workdir={workdir}: jaxlab import writes a local folder (it renames it '
                    'into place when complete); import locally, then copy the folder.')
  workdir = os.path.abspath(os.path.expanduser(workdir))
  if os.path.exists(workdir) and (not os.path.isdir(workdir) or os.listdir(workdir)):
    raise UserError(f'--workdir={workdir} already exists and is not empty; give a new folder.')
  if os.path.isdir(workdir):
    os.rmdir(workdir)  # an empty folder is replaced by the complete one
  os.makedirs(os.path.dirname(workdir), exist_ok=True)
  return workdir


def _write(the_plan, layout, staging):
  checkpoint, model = the_plan.checkpoint, the_plan.model
  tokenizer = tokenizer_files.copy(checkpoint, staging)
  info = model.info if tokenizer is None else _with_tokenizer(model.info, tokenizer)
  config_lib.save(the_plan.config, staging)
  data_lib.save_info(info, staging)
  variables = loading.read_variables(the_plan, layout.shapes, layout.shardings)
  _save_step_zero(the_plan, variables, info, staging)
  notes = list(model.notes)
  if tokenizer is None and model.task == 'language_model':
    notes.append('no tokenizer.json or tokenizer.model beside the checkpoint: `jaxlab sample` '
                 'cannot encode prompts')
  return dict(source=checkpoint.directory, architecture=checkpoint.architecture,
              model=model.model['name'], parameters=_count(variables.params),
              checkpoint_bytes=checkpoint.disk_bytes(), tokenizer=tokenizer, notes=notes)


def _with_tokenizer(info, spec):
  import dataclasses  # pylint: disable=import-outside-toplevel
  return dataclasses.replace(info, tokenizer=spec)


def _save_step_zero(the_plan, variables, info, staging):
  config = the_plan.config
  replicated = jax.sharding.NamedSharding(jax.tree.leaves(variables.params)[0].sharding.mesh,
                                          jax.sharding.PartitionSpec())
  state = dict(step=jax.device_put(jnp.zeros((), jnp.int32), replicated),
               params=variables.params, model_state=variables.model_state,
               rng=jax.device_put(modeling.seed_keys(config.seed)['steps'], replicated))
  meta = dict(step=0, seed=int(config.seed), steps_per_epoch=0, dataset=info.to_json(),
              imported_from=the_plan.checkpoint.directory)
  # Orbax buffers what it writes: writing about one array at a time (its limit is whole
  # GB, at least the largest array) keeps that buffer from becoming a second copy of the
  # model, which a CPU host, whose memory the parameters already fill, cannot afford.
  largest = max(leaf.nbytes for leaf in jax.tree.leaves(state))
  checkpointer = checkpoint_lib.Checkpointer(staging, keep=1, best_metric='',
                                             async_save=False,
                                             save_concurrent_gb=math.ceil(largest / 1e9))
  digests = digest.tree_digests_in_slices(state)
  try:
    checkpointer.save(0, state, meta, data={}, state_digests=digests)
    checkpointer.wait()
  finally:
    checkpointer.close()


def _count(params):
  return int(sum(leaf.size for leaf in jax.tree.leaves(params)))


def _write_json(path, record):
  storage.write_text(path, json.dumps(record, indent=2) + '\n')
