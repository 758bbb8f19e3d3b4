"""Classification metrics from predictions: accuracy, macro precision/recall/F1, confusion."""

import numpy as np


def confusion_matrix(labels, predictions, num_classes):
  """counts[true, predicted]."""
  counts = np.zeros((num_classes, num_classes), dtype=np.int64)
  np.add.at(counts, (np.asarray(labels), np.asarray(predictions)), 1)
  return counts


def _safe_divide(numerator, denominator):
  return np.divide(numerator, denominator, out=np.zeros_like(numerator, dtype=np.float64),
                   where=denominator > 0)


def classification_metrics(labels, predictions, num_classes):
  """Macro averages over the classes seen in labels or predictions, as scikit-learn
  averages; a class never predicted has precision 0 (its zero_division=0)."""
  counts = confusion_matrix(labels, predictions, num_classes)
  true_positives = np.diag(counts).astype(np.float64)
  precision = _safe_divide(true_positives, counts.sum(axis=0))
  recall = _safe_divide(true_positives, counts.sum(axis=1))
  f1 = _safe_divide(2 * precision * recall, precision + recall)
  seen = (counts.sum(axis=0) + counts.sum(axis=1)) > 0
  precision, recall, f1 = precision[seen], recall[seen], f1[seen]
  return {
      'accuracy': float(true_positives.sum() / max(counts.sum(), 1)),
      'precision': float(precision.mean()),
      'recall': float(recall.mean()),
      'f1': float(f1.mean()),
      'confusion_matrix': counts.tolist(),
  }


def format_table(metrics, title='eval'):
  """A plain-text table of the scalar metrics, for the terminal."""
  rows = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float))]
  width = max(len(k) for k, _ in rows)
  lines = [title, '-' * (width + 12)]
  lines += [f'{k:<{width}}  {v:>10.4f}' if isinstance(v, float) else f'{k:<{width}}  {v:>10}'
            for k, v in rows]
  return '\n'.join(lines)
