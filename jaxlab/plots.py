"""PNG plots for the workdir: training curves and the confusion matrix."""

import io
import posixpath
import threading

from jaxlab import storage, workdir_files


_PREPARING = []  # the thread of prepare(), if started


def _import_pyplot():
  import matplotlib
  matplotlib.use('Agg')  # no display needed
  from matplotlib import pyplot
  return pyplot


def prepare():
  """Imports matplotlib in a background thread (half a second, which would otherwise
  fall after the last step), while compilation and training leave the interpreter free."""
  if not _PREPARING:
    _PREPARING.append(threading.Thread(target=_import_pyplot, daemon=True,
                                       name='jaxlab-import-matplotlib'))
    _PREPARING[0].start()


def _figure():
  if _PREPARING:
    _PREPARING[0].join()
  return _import_pyplot()


def _save(figure, path):
  buffer = io.BytesIO()
  figure.savefig(buffer, format='png', dpi=100, bbox_inches='tight')
  storage.write_bytes(path, buffer.getvalue())


def training_curves(records, workdir):
  """One panel per metric name (loss, accuracy, ...), train and eval on the same axes."""
  pyplot = _figure()
  names = sorted({key.split('/', 1)[1] for r in records for key in r if '/' in key
                  and key.split('/', 1)[0] in ('train', 'eval') and _is_number(r[key])})
  panels = [n for n in ('loss', 'accuracy', 'learning_rate', 'f1') if n in names]
  if not panels:
    return None
  figure, axes = pyplot.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), squeeze=False)
  for axis, name in zip(axes[0], panels):
    for split in ('train', 'eval'):
      points = [(r['step'], r[f'{split}/{name}']) for r in records if f'{split}/{name}' in r]
      if points:
        axis.plot(*zip(*points), label=_label(split, name),
                  marker='o' if split == 'eval' else None)
    axis.set_title(name)
    axis.set_xlabel('step')
    axis.legend()
  path = posixpath.join(workdir, workdir_files.TRAINING_CURVES)
  _save(figure, path)
  pyplot.close(figure)
  return path


def _label(split, name):
  """What a curve's points are, as metrics.jsonl holds them (jaxlab.train.loop.Window)."""
  if split == 'eval':
    return 'eval (test set)'
  if name == 'learning_rate':
    return 'train (at the logged step)'
  return 'train (mean since the previous record)'


def confusion_matrix(counts, class_names, workdir, step):
  pyplot = _figure()
  size = max(4.0, 0.45 * len(counts))
  figure, axis = pyplot.subplots(figsize=(size + 1, size))
  image = axis.imshow(counts, cmap='Blues')
  figure.colorbar(image, ax=axis)
  ticks = range(len(counts))
  axis.set_xticks(ticks, class_names, rotation=90)
  axis.set_yticks(ticks, class_names)
  axis.set_xlabel('predicted')
  axis.set_ylabel('true')
  axis.set_title(f'confusion matrix, step {step}')
  for i, row in enumerate(counts):
    for j, count in enumerate(row):
      if count:
        axis.text(j, i, str(count), ha='center', va='center', fontsize=7)
  path = posixpath.join(workdir, workdir_files.CONFUSION_MATRIX)
  _save(figure, path)
  pyplot.close(figure)
  return path


def _is_number(value):
  return isinstance(value, (int, float))
