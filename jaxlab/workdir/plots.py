"""PNG plots for the workdir: training curves and the confusion matrix.

A panel whose values are all one (a single evaluation, a constant learning rate) is drawn
against the metric's natural range, not autoscaled into noise around the value.

matplotlib is imported once per process. When `prepare()` started that import in a
background thread, `pyplot()` joins it and never imports again: a second import after
a failed or unfinished one meets matplotlib's registries half built (KeyError:
'Rectangle:kwdoc' at the end of a run).
"""

import io
import posixpath

import numpy as np

from jaxlab import storage
from jaxlab.runtime import background
from jaxlab.workdir import files as workdir_files
from jaxlab.errors import UserError

# Up to this many classes the confusion matrix is drawn whole, a count in every cell;
# beyond, only this many of the most-confused classes, so the figure (0.45 inch and one
# text per cell) stays bounded at any class count.
MAX_CLASSES_SHOWN = 30
# The background import's longest wait: a fresh machine builds matplotlib's font cache.
IMPORT_TIMEOUT_S = 300

_PREPARING = []  # the Background import of prepare(), if started


def _import_pyplot():
  import matplotlib
  matplotlib.use('Agg')  # no display needed
  from matplotlib import pyplot
  return pyplot


def prepare():
  """Imports matplotlib in a background thread (half a second, which would otherwise
  fall after the last step), while compilation and training leave the interpreter free."""
  if not _PREPARING:
    _PREPARING.append(background.Background(_import_pyplot, name='jaxlab-import-matplotlib'))


def pyplot():
  """matplotlib.pyplot; after `prepare()`, the module its background import returned."""
  if not _PREPARING:
    return _import_pyplot()
  try:
    return _PREPARING[0].result(timeout=IMPORT_TIMEOUT_S)
  except Exception as error:  # pylint: disable=broad-except
    raise UserError('matplotlib could not be imported in the background '
                    f'({background.one_line(error)})') from error


def save(figure, path):
  buffer = io.BytesIO()
  figure.savefig(buffer, format='png', dpi=100, bbox_inches='tight')
  storage.write_bytes(path, buffer.getvalue())


# training_curves' panels, in order: those a run's metrics hold are drawn.
PANELS = ('loss', 'perplexity', 'accuracy', 'token_accuracy', 'learning_rate', 'f1')
# Metrics in [0, 1], and metrics never below 0: what a panel of one value is drawn against.
FRACTIONS = ('accuracy', 'token_accuracy', 'f1')
NON_NEGATIVE = ('loss', 'perplexity', 'learning_rate')


def training_curves(records, workdir):
  """Draws training_curves.png; returns its path, or None when no metric has a panel."""
  figure = curves_figure(records)
  if figure is None:
    return None
  path = posixpath.join(workdir, workdir_files.TRAINING_CURVES)
  try:
    save(figure, path)
  finally:
    pyplot().close(figure)
  return path


def curves_figure(records):
  """One panel per metric name (loss, perplexity, accuracy, ...), train and eval on the
  same axes; None when the records hold none of PANELS."""
  plt = pyplot()
  names = sorted({key.split('/', 1)[1] for r in records for key in r if '/' in key
                  and key.split('/', 1)[0] in ('train', 'eval') and _is_number(r[key])})
  panels = [n for n in PANELS if n in names]
  if not panels:
    return None
  figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), squeeze=False)
  for axis, name in zip(axes[0], panels):
    _draw_panel(axis, name, records)
  return figure


def _draw_panel(axis, name, records):
  points = []
  for split in ('train', 'eval'):
    split_points = [(r['step'], r[f'{split}/{name}']) for r in records if f'{split}/{name}' in r]
    if split_points:
      axis.plot(*zip(*split_points), label=_label(split, name),
                marker='o' if split == 'eval' else None)
      points += split_points
  steps, values = zip(*points)
  if len(set(values)) == 1:  # autoscaling would zoom into nothing (0.92-1.02 around 0.97)
    axis.set_ylim(*flat_limits(name, values[0]))
  elif name == 'perplexity' and min(values) > 0 and max(values) > 10 * min(values):
    axis.set_yscale('log')  # the first steps' (about the vocabulary size) flatten the rest
  if len(set(steps)) == 1:  # one step: fractional step ticks around it say nothing
    axis.set_xlim(0, max(1.1 * steps[0], 1))
  axis.xaxis.get_major_locator().set_params(integer=True)
  axis.set_title(name)
  axis.set_xlabel('step')
  axis.legend()


def flat_limits(name, value):
  """The y range of a panel whose values are all `value`: the whole [0, 1] for a
  fraction, from 0 to a quarter above the value for a metric that is never negative,
  else 10% either side; with matplotlib's 5% margins, so a point on an edge stays whole."""
  if name in FRACTIONS:
    low, high = 0.0, 1.0
  elif name in NON_NEGATIVE and value >= 0:
    low, high = 0.0, 1.25 * value or 1.0
  else:
    low, high = value - (0.1 * abs(value) or 1.0), value + (0.1 * abs(value) or 1.0)
  margin = 0.05 * (high - low)
  return low - margin, high + margin


def _label(split, name):
  """What a curve's points are, as metrics.jsonl holds them (jaxlab.train.loop.Window)."""
  if split == 'eval':
    return 'eval (test set)'
  if name == 'learning_rate':
    return 'train (at the logged step)'
  return 'train (mean since the previous record)'


def confusion_matrix(counts, class_names, workdir, step):
  """counts[true, predicted] as a heat map with the count in each cell: every class up
  to MAX_CLASSES_SHOWN, else the sub-matrix of the most-confused classes (the title
  says so)."""
  counts = np.asarray(counts)
  title = f'confusion matrix, step {step}'
  if len(counts) > MAX_CLASSES_SHOWN:
    shown = most_confused(counts, MAX_CLASSES_SHOWN)
    title += f'\nthe {len(shown)} of {len(counts)} classes with the most errors'
    counts, class_names = counts[np.ix_(shown, shown)], [class_names[i] for i in shown]
  return _heat_map(counts, class_names, title,
                   posixpath.join(workdir, workdir_files.CONFUSION_MATRIX))


def _heat_map(counts, class_names, title, path):
  plt = pyplot()
  size = max(4.0, 0.45 * len(counts))
  figure, axis = plt.subplots(figsize=(size + 1, size))
  image = axis.imshow(counts, cmap='Blues')
  figure.colorbar(image, ax=axis)
  ticks = range(len(counts))
  axis.set_xticks(ticks, class_names, rotation=90)
  axis.set_yticks(ticks, class_names)
  axis.set_xlabel('predicted')
  axis.set_ylabel('true')
  axis.set_title(title)
  for i, row in enumerate(counts):
    for j, count in enumerate(row):
      if count:
        axis.text(j, i, str(count), ha='center', va='center', fontsize=7)
  save(figure, path)
  plt.close(figure)
  return path


def most_confused(counts, limit):
  """Ascending indices of the `limit` classes with the most errors (off-diagonal counts
  in their row or column); every class when there are at most `limit`."""
  if len(counts) <= limit:
    return np.arange(len(counts))
  errors = counts.sum(axis=0) + counts.sum(axis=1) - 2 * np.diagonal(counts)
  return np.sort(np.argsort(-errors, kind='stable')[:limit])


def _is_number(value):
  return isinstance(value, (int, float))
