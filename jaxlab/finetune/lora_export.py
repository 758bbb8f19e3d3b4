"""`jaxlab export --merge_lora`: a LoRA run as the plain model it equals, each adapter
folded into its weight, so the export has the base model's weights and speed."""

import copy
import dataclasses

import jax

from jaxlab.inference import programs as programs_lib
from jaxlab.models import modeling
from jaxlab.errors import UserError
from jaxlab.finetune import lora


def merged_run(run):
  """The inference.TrainedRun of the plain model with the merged weights."""
  if not lora.enabled(run.config):
    raise UserError(f'--merge_lora: {run.workdir} was trained without LoRA adapters '
                    '(its config has lora.rank=0); export it without --merge_lora.')
  variables = lora.merged_variables(run.programs.model, jax.device_get(run.variables), run.config)
  config = copy.deepcopy(run.config)
  config.lora.rank = 0
  mesh = run.programs.mesh
  model, layout = modeling.variables_layout(config, run.task, mesh)
  if jax.tree.structure(variables) != jax.tree.structure(layout.shapes):
    raise UserError(f'--merge_lora: the merged weights of {run.workdir} do not form the plain '
                    'model (an adapter on a layer jaxlab cannot merge); export without '
                    '--merge_lora.')
  return dataclasses.replace(run, config=config, variables=jax.device_put(variables,
                                                                         layout.shardings),
                             programs=programs_lib.Programs(run.task, model, mesh, layout))
