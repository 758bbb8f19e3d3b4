"""Knowledge distillation (Hinton et al. 2015): the student's loss mixes the labels'
loss with its distance to a trained teacher's softened outputs,

  loss = alpha * T² * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * label loss

The teacher is loaded like `jaxlab eval` loads a run (parameters and model state only,
eval mode) and runs inside the compiled step on the student's inputs; its variables
are an argument of the step, replicated on the student's mesh, and never trained.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxlab.errors import UserError
from jaxlab.parallel import sharding
from jaxlab.tasks import base


@dataclasses.dataclass(frozen=True)
class Distillation:
  model: Any  # the teacher's modeling.ModelDef
  temperature: float
  alpha: float

  def loss(self, label_loss, metrics, student_logits, teacher, args, kwargs, batch):
    """*compiled* (mixed loss, metrics + the distillation term)."""
    teacher_logits, _ = self.model.apply(teacher.params, teacher.model_state, args, kwargs,
                                         train=False)
    t = self.temperature
    targets = jax.nn.softmax(jax.lax.stop_gradient(teacher_logits.astype(jnp.float32)) / t)
    log_student = jax.nn.log_softmax(student_logits.astype(jnp.float32) / t)
    kl_B = optax.losses.kl_divergence(log_student, targets)
    distill_loss = base.weighted_mean(kl_B, batch) * t * t  # T²: gradients keep their scale
    loss = self.alpha * distill_loss + (1 - self.alpha) * label_loss
    return loss, dict(metrics, label_loss=label_loss, distill_loss=distill_loss)


def load(config, task, mesh):
  """(Distillation, the teacher's Variables replicated on `mesh`) for
  config.distill.teacher_workdir, or (None, None) when distillation is off."""
  c = config.distill
  if not c.teacher_workdir:
    return None, None
  from jaxlab.inference import trained_run as inference
  try:
    teacher = inference.load(c.teacher_workdir, c.checkpoint)
  except UserError as error:
    raise UserError(f'--config.distill.teacher_workdir={c.teacher_workdir} is not a trained run '
                    f'to distil from ({error}) Train the teacher there first, or fix the path.'
                    ) from None
  _check_compatible(teacher, task, c.teacher_workdir)
  variables = jax.device_put(teacher.variables, sharding.replicated(mesh))
  return Distillation(teacher.programs.model, float(c.temperature), float(c.alpha)), variables


def _check_compatible(teacher, task, workdir):
  from jaxlab.tasks import classification
  problem = None
  if not isinstance(task, classification.Classification):
    problem = f'distillation is for classification; this run\'s task is {type(task).__name__}'
  elif not isinstance(teacher.task, classification.Classification):
    problem = f'the teacher is a {type(teacher.task).__name__} model, not a classifier'
  elif teacher.info.num_classes != task.info.num_classes:
    problem = (f'the teacher has {teacher.info.num_classes} classes, the student '
               f'{task.info.num_classes}')
  elif teacher.task.model_signature()[0] != task.model_signature()[0]:
    problem = (f'the teacher takes inputs of shape {teacher.task.model_signature()[0]}, the '
               f'student {task.model_signature()[0]}')
  if problem:
    raise UserError(f'--config.distill.teacher_workdir={workdir} cannot teach this run: '
                    f'{problem}. Point it at a run trained on the same data set.')
