"""Explaining a trained image classifier's predictions for image files (`jaxlab
explain`): the attributions of jaxlab.inference.attributions per file, written as an
overlay PNG each and a summary (JSON and one paragraph per file)."""

import io
import json
import os
import posixpath

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab import storage
from jaxlab.errors import UserError
from jaxlab.inference import trained_run as inference
from jaxlab.inference.attributions import (
    CAM_METHODS, COMPLETENESS_TOLERANCE, DEFAULT_STEPS, GRID, METHODS, _logits, attributions,
    check_supported, randomized_variables, rank_correlation, targets, top_regions)
from jaxlab.workdir import files as workdir_files
from jaxlab.workdir import plots


def overlay_figure(image_HxWxC, map_HxW, title, signed):
  """(figure, heat-map artist): the input, and beside it the attribution map drawn opaque
  (a cell's colour is the colourbar's colour for its value; any transparency would mix
  in the pixel beneath) with the input's outline drawn over it as contour lines."""
  pyplot = plots.pyplot()
  figure, (left, right) = pyplot.subplots(1, 2, figsize=(6, 3.2))
  gray = image_HxWxC.mean(-1) if image_HxWxC.shape[-1] != 3 else None
  left.imshow(gray if gray is not None else image_HxWxC, cmap='gray', interpolation='nearest')
  limit = max(float(np.abs(map_HxW).max()), 1e-12)
  heat = right.imshow(map_HxW, cmap='bwr' if signed else 'inferno', interpolation='nearest',
                      vmin=-limit if signed else 0, vmax=limit)
  luminance = gray if gray is not None else image_HxWxC.mean(-1)
  if np.ptp(luminance) > 0:  # the outline at half the input's brightness range
    right.contour(luminance, levels=[luminance.min() + np.ptp(luminance) / 2],
                  colors='limegreen' if not signed else 'black', linewidths=1)
  figure.colorbar(heat, ax=right, fraction=0.046)
  for axis in (left, right):
    axis.set_xticks([])
    axis.set_yticks([])
  left.set_title('input')
  right.set_title(title, fontsize=9)
  return figure, heat


def _overlay(image_HxWxC, map_HxW, title, signed):
  figure, _ = overlay_figure(image_HxWxC, map_HxW, title, signed)
  buffer = io.BytesIO()
  figure.savefig(buffer, format='png', dpi=100, bbox_inches='tight')
  plots.pyplot().close(figure)
  return buffer.getvalue()


def explain(workdir, paths, which='best', method='saliency', target='predicted', out=None,
            steps=None, sanity_check=False):
  """Writes an overlay per readable file and the summary; returns (records, errors)."""
  steps = DEFAULT_STEPS if steps is None else steps
  if method not in METHODS:
    raise UserError(f'--method={method} is not an explanation method; use one of '
                    f'{", ".join(METHODS)}.')
  if steps < 1:
    raise UserError(f'--steps={steps} must be at least 1 (integration intervals).')
  run = inference.load(workdir, which)
  check_supported(run)
  batch, readable, errors = run.task.predict_inputs(paths)
  if not readable:
    return [], errors
  (x,), _ = run.task.model_inputs({k: jnp.asarray(v) for k, v in batch.items()}, None,
                                  train=False)
  x = x.astype(jnp.float32)
  logits = jax.jit(lambda v, x: _logits(v, x, model=run.programs.model))(run.variables, x)
  probabilities = np.asarray(jax.nn.softmax(logits))
  target_N = targets(run, target, logits)
  maps, extra = attributions(run, run.variables, x, target_N, method, steps)
  if sanity_check:
    random_maps, _ = attributions(run, randomized_variables(run), x, target_N, method, steps)
  out = out or workdir_files.path(storage.absolute(workdir), workdir_files.EXPLANATIONS)
  storage.make_dirs(out)
  records = []
  for index, path in enumerate(readable):
    predicted = int(probabilities[index].argmax())
    record = dict(file=str(path), method=method,
                  predicted=run.info.label_name(predicted),
                  probability=float(probabilities[index, predicted]),
                  target=run.info.label_name(int(target_N[index])),
                  attribution=dict(sum=float(maps[index].sum()), min=float(maps[index].min()),
                                   max=float(maps[index].max()),
                                   positive_share=float((maps[index] > 0).mean())),
                  top_regions=[dict(rows=list(map(int, r)), cols=list(map(int, c)),
                                    share=round(s, 4))
                               for r, c, s in top_regions(maps[index])],
                  map_shape=list(maps[index].shape))
    if method == 'integrated_gradients':
      delta = float(extra['logit_delta'][index])
      total = float(extra['attribution_sum'][index])
      record['completeness'] = dict(attribution_sum=total, logit_delta=delta,
                                    relative_error=abs(total - delta) / max(abs(delta), 1e-12))
    if method in CAM_METHODS:
      record['layer'] = extra['layer']
      record['layer_cells'] = list(map(int, extra['layer_cells']))
    if sanity_check:
      # Signed maps (integrated gradients' sign is part of the explanation); with
      # absolute values, (x - x0) dominates both maps and they correlate anyway.
      record['randomized_model_rank_correlation'] = rank_correlation(maps[index],
                                                                     random_maps[index])
    stem = os.path.splitext(os.path.basename(str(path)))[0]
    record['overlay'] = posixpath.join(out, f'{stem}_{method}.png')
    title = (f'{method}\npredicted {record["predicted"]} ({record["probability"]:.2f}), '
             f'target {record["target"]}')
    storage.write_bytes(record['overlay'], _overlay(
        np.asarray(batch['image'][index]) / run.info.pixel_max, maps[index], title,
        signed=method == 'integrated_gradients'))
    records.append(record)
  storage.write_text(posixpath.join(out, f'summary_{method}.json'),
                     json.dumps(records, indent=2) + '\n')
  storage.write_text(posixpath.join(out, f'summary_{method}.txt'),
                     ''.join(summary_line(r) + '\n' for r in records))
  return records, errors


def summary_line(record):
  """One paragraph per file: prediction, method, top regions, statistics and checks."""
  regions = ', '.join(f'rows {r["rows"][0]}-{r["rows"][1]} cols {r["cols"][0]}-{r["cols"][1]} '
                      f'{r["share"]:.0%}' for r in record['top_regions'])
  stats, (height, width) = record['attribution'], record['map_shape']
  layer = ''
  if 'layer' in record:
    rows, cols = record['layer_cells']
    layer = f' at layer {record["layer"]} ({rows}x{cols} cells, upsampled)'
  line = (f'{record["file"]}: predicted {record["predicted"]} ({record["probability"]:.3f}); '
          f'{record["method"]} of class {record["target"]}{layer}; cells of a {GRID}x{GRID} '
          f'grid over the {height}x{width} input holding most |attribution| ('
          f'{1 / GRID ** 2:.0%} each if even): {regions}; sum {stats["sum"]:.4g}, '
          f'min {stats["min"]:.4g}, max {stats["max"]:.4g}')
  if record['method'] == 'gradcam':
    line += ('; Grad-CAM averages each channel\'s gradient over positions, so where the '
             'model\'s head reads positions (cnn) it can mark places the model does not use: '
             'compare --method=hirescam')
  if 'completeness' in record:
    check = record['completeness']
    line += (f'; completeness: attributions sum {check["attribution_sum"]:.4f} vs logit '
             f'difference {check["logit_delta"]:.4f} ({check["relative_error"]:.2%} off'
             f'{", raise --steps" if check["relative_error"] > COMPLETENESS_TOLERANCE else ""})')
  if 'randomized_model_rank_correlation' in record:
    line += (f'; rank correlation with a randomized model '
             f'{record["randomized_model_rank_correlation"]:.3f}')
  return line + f'. Overlay: {record["overlay"]}'
