"""Attribution maps: which pixels an image classifier's prediction rests on (for
`jaxlab explain`, written per file by jaxlab.inference.explanations).

Methods (the attributions are of one class's logit, with respect to the model's input,
i.e. the image scaled as the task feeds it):
  saliency              |d logit / d x|, the largest over colour channels (Simonyan et
                        al. 2014).
  integrated_gradients  (x - x0) * the mean gradient along the straight path from a
                        black baseline x0 to x (Sundararajan et al. 2017), by the
                        trapezoidal rule over `steps` intervals, all points in one
                        compiled call. Completeness (the attributions add up to
                        logit(x) - logit(x0)) is checked and reported per image.
  gradcam               relu(sum_k a_k A_k), A the output of the model's last
                        convolution (the last nnx.Conv its forward pass calls) and a_k
                        the spatial mean of d logit / d A_k (Selvaraju et al. 2017),
                        upsampled to the image. Models without a convolution (mlp, vit,
                        text and sequence models) are refused. Averaging the gradient over
                        positions assumes a head that averages them too (the resnets'
                        global pooling); where the head reads each position with its own
                        weights (cnn's flatten -> dense), Grad-CAM can light up places
                        the model does not use: on a task whose answer is known by
                        construction (tests/test_quantize_explain.py), it put 40% of its
                        mass in the deciding quadrant (25% by chance), HiResCAM 88%.
  hirescam              relu(sum_k dlogit/dA_k * A_k), the same product position by
                        position (Draelos & Carin 2020), equal to Grad-CAM under global
                        average pooling and faithful to a flattening head as well.
The gradients are jax.grad of the model's pure forward pass; no attribution library
fits JAX (PAIR's `saliency` is framework-agnostic but numpy-side, one model call per
integration step, and unreleased since 2024).

`sanity_check` (Adebayo et al. 2018): the same attributions for a model with freshly
initialised weights, and the Spearman rank correlation of the two (signed) maps; a
method that explains the trained model gives a low correlation. (On absolute values,
integrated gradients stay correlated, as that paper found for gradient x input: the
factor x - x0 shapes both maps.)
"""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlab.models import modeling
from jaxlab.errors import UserError

METHODS = ('saliency', 'integrated_gradients', 'gradcam', 'hirescam')
CAM_METHODS = ('gradcam', 'hirescam')  # maps of the last convolution's output
DEFAULT_STEPS = 128  # completeness within 1% on digits and noise images (64: 1.4% on noise)
COMPLETENESS_TOLERANCE = 0.01  # relative, as in the integrated-gradients paper's advice
GRID = 4  # top regions are cells of a GRID x GRID division of the image


def _logit(variables, x_HxWxC, target, *, model):
  outputs, _ = model.apply(variables.params, variables.model_state, (x_HxWxC[None],), {},
                           train=False)
  return outputs[0, target].astype(jnp.float32)


def _logits(variables, x_NxHxWxC, *, model):
  outputs, _ = model.apply(variables.params, variables.model_state, (x_NxHxWxC,), {},
                           train=False)
  return outputs.astype(jnp.float32)


def saliency(variables, x_NxHxWxC, targets_N, *, model):
  """|gradient| of each example's target logit, the largest over channels: N x H x W."""
  grad_fn = jax.grad(functools.partial(_logit, model=model), argnums=1)
  grads = jax.vmap(grad_fn, in_axes=(None, 0, 0))(variables, x_NxHxWxC, targets_N)
  return jnp.abs(grads).max(axis=-1)


def integrated_gradients(variables, x_NxHxWxC, targets_N, *, model, steps=DEFAULT_STEPS,
                         chunk=64):
  """(attributions N x H x W x C, logit(x) - logit(baseline) N) from a zero baseline."""
  alphas = jnp.linspace(0.0, 1.0, steps + 1)
  weights = jnp.ones(steps + 1).at[0].set(0.5).at[-1].set(0.5) / steps  # trapezoidal rule
  grad_fn = jax.grad(_logit, argnums=1)

  def one(x_HxWxC, target):
    baseline = jnp.zeros_like(x_HxWxC)
    points = baseline + alphas[:, None, None, None] * (x_HxWxC - baseline)
    grads = jax.lax.map(lambda p: grad_fn(variables, p, target, model=model), points,
                        batch_size=min(chunk, steps + 1))
    attributions = (x_HxWxC - baseline) * jnp.tensordot(weights, grads, axes=1)
    delta = _logit(variables, x_HxWxC, target, model=model) - \
        _logit(variables, baseline, target, model=model)
    return attributions, delta

  return jax.lax.map(lambda args: one(*args), (x_NxHxWxC, targets_N))


def _modules_by_path(model):
  return {path: module for path, module in nnx.iter_modules(model)}


def _probe(conv, probe, captured, calls=None):
  """Makes this instance of a convolution (in a model merged inside a pure function,
  so nothing outside sees it) append (call number, output) to `captured` and add
  `probe` to its output (zeros: the gradient with respect to `probe` is the gradient
  with respect to the output)."""
  class Probed(type(conv)):
    def __call__(self, *args, **kwargs):
      output = super().__call__(*args, **kwargs)
      captured.append((next(calls) if calls else 0, output))
      return output if probe is None else output + probe
  conv.__class__ = Probed


def last_convolution(run):
  """(path, output shape for one example) of the last nnx.Conv the forward pass calls."""
  model_def = run.programs.model
  order = []

  def trace(variables, x_HxWxC):
    model = nnx.merge(model_def.eval_graph, variables.params, variables.model_state)
    outputs, calls = {}, itertools.count()
    for path, module in _modules_by_path(model).items():
      if isinstance(module, nnx.Conv):
        _probe(module, None, outputs.setdefault(path, []), calls)
    model(x_HxWxC[None])
    called = [path for path, captured in outputs.items() if captured]
    order.extend(sorted(called, key=lambda path: outputs[path][-1][0]))  # by last call
    return {path: outputs[path][-1][1] for path in called}

  shapes = jax.eval_shape(trace, run.variables, jnp.zeros(run.info.image_shape, jnp.float32))
  if not order:
    raise UserError(f'--method=gradcam or hirescam needs a convolutional layer, and model '
                    f'{run.config.model.name!r} has none (Grad-CAM supports cnn and the '
                    'resnets). Use --method=saliency or --method=integrated_gradients.')
  return order[-1], tuple(shapes[order[-1]].shape[1:])


def gradcam(variables, x_NxHxWxC, targets_N, *, model, conv_path, feature_shape,
            positionwise=False):
  """Grad-CAM maps N x H x W, in [0, 1] per example; HiResCAM's if `positionwise` (the
  gradient multiplies the activations position by position, not as its spatial mean)."""
  height, width = x_NxHxWxC.shape[1:3]

  def one(x_HxWxC, target):
    def logit_of_probe(probe_hxwxC):
      net = nnx.merge(model.eval_graph, variables.params, variables.model_state)
      captured = []
      _probe(_modules_by_path(net)[conv_path], probe_hxwxC[None], captured)
      return net(x_HxWxC[None])[0, target].astype(jnp.float32), captured[-1][1][0]
    grads_hxwxC, features_hxwxC = jax.grad(logit_of_probe, has_aux=True)(
        jnp.zeros(feature_shape, jnp.float32))
    weights = grads_hxwxC if positionwise else grads_hxwxC.mean(axis=(0, 1))
    cam_hxw = jax.nn.relu((features_hxwxC.astype(jnp.float32) * weights).sum(-1))
    cam_HxW = jax.image.resize(cam_hxw, (height, width), 'bilinear')
    return cam_HxW / jnp.maximum(cam_HxW.max(), 1e-12)

  return jax.lax.map(lambda args: one(*args), (x_NxHxWxC, targets_N))


def check_supported(run):
  if run.quantization:
    raise UserError(f'{run.workdir} holds an int8 model, whose rounding has no useful '
                    'gradient; explain the float run it was quantized from (the parent '
                    'workdir).')
  from jaxlab.tasks import detection  # pylint: disable=g-import-not-at-top
  if isinstance(run.task, detection.Detection):
    raise UserError('jaxlab explain attributes an image classifier\'s class scores to pixels; '
                    'this run is a detector, whose boxes it does not explain. See its boxes '
                    f'drawn with `jaxlab predict --workdir={run.workdir} IMAGE` (a PNG per '
                    'image), or explain a classifier, e.g. experiments/digits_cnn.py.')
  if getattr(run.task, 'input', None) != 'image':
    what = getattr(run.task, 'input', None) or type(run.task).__name__
    raise UserError(f'jaxlab explain attributes image classifiers\' predictions to pixels; '
                    f'this run\'s model reads {what!r} (token-level saliency for text models '
                    'and audio attributions are not implemented). Use a run trained on '
                    'images, e.g. experiments/digits_cnn.py.')


def targets(run, target, logits_NxC):
  """The class index explained for each example: the predicted one, or `target` (an
  index or a class name) for all."""
  if target == 'predicted':
    return np.asarray(logits_NxC).argmax(-1)
  names = [run.info.label_name(i) for i in range(run.info.num_classes)]
  if str(target).isdigit() and int(target) < run.info.num_classes:
    index = int(target)
  elif target in names:
    index = names.index(target)
  else:
    raise UserError(f'--target={target} is neither "predicted", a class index below '
                    f'{run.info.num_classes} nor a class name ({", ".join(names[:10])}...).')
  return np.full(len(logits_NxC), index)


_COMPILED = dict(
    saliency=jax.jit(saliency, static_argnames=('model',)),
    integrated_gradients=jax.jit(integrated_gradients,
                                 static_argnames=('model', 'steps', 'chunk')),
    gradcam=jax.jit(gradcam, static_argnames=('model', 'conv_path', 'feature_shape',
                                              'positionwise')))


def attributions(run, variables, x, target_N, method, steps=DEFAULT_STEPS):
  """(maps N x H x W, extra per-example values) for `method`; `variables` may be the
  run's or others of the same shapes (the sanity check's), which reuse the compilation."""
  model = run.programs.model
  if method == 'saliency':
    return np.asarray(_COMPILED[method](variables, x, target_N, model=model)), {}
  if method == 'integrated_gradients':
    attr, delta = _COMPILED[method](variables, x, target_N, model=model, steps=steps)
    attr = np.asarray(attr)
    return attr.sum(-1), dict(attribution_sum=attr.sum((1, 2, 3)), logit_delta=np.asarray(delta))
  conv_path, shape = last_convolution(run)
  maps = _COMPILED['gradcam'](variables, x, target_N, model=model, conv_path=conv_path,
                              feature_shape=shape, positionwise=method == 'hirescam')
  return np.asarray(maps), dict(layer='/'.join(map(str, conv_path)), layer_cells=shape[:2])


def randomized_variables(run, seed=1):
  """The run's model freshly initialised (another seed): the sanity check's reference."""
  config = run.config.copy_and_resolve_references()
  config.seed = int(run.config.seed) + seed
  # One compiled initialiser (eagerly, each parameter's would compile on its own), placed
  # like the run's variables, so the attributions' compilation is reused.
  init = jax.jit(functools.partial(modeling.init_variables, config, run.task),
                 out_shardings=run.programs.variables_layout.shardings)
  return init()


def rank_correlation(a, b):
  """Spearman's rank correlation of two maps (flattened); NaN where one is constant
  (e.g. a Grad-CAM map that relu zeroed): it ranks nothing."""
  a, b = np.ravel(a), np.ravel(b)
  if np.ptp(a) == 0 or np.ptp(b) == 0:
    return float('nan')
  from scipy import stats
  return float(stats.spearmanr(a, b).statistic)


def top_regions(map_HxW, count=3):
  """The `count` cells of a GRID x GRID division holding most |attribution|:
  [(row range, column range, share)]."""
  height, width = map_HxW.shape
  rows = np.linspace(0, height, GRID + 1).astype(int)
  cols = np.linspace(0, width, GRID + 1).astype(int)
  magnitude = np.abs(map_HxW)
  total = max(float(magnitude.sum()), 1e-12)
  cells = [((rows[i], rows[i + 1] - 1), (cols[j], cols[j + 1] - 1),
            float(magnitude[rows[i]:rows[i + 1], cols[j]:cols[j + 1]].sum()) / total)
           for i in range(GRID) for j in range(GRID)]
  return sorted(cells, key=lambda cell: -cell[2])[:count]
