"""Writes an int8 copy of a trained model to WORKDIR/quantized_<mode>, itself a workdir
for eval and predict, and compares it with the float model (metrics, bytes of weights,
inference time). --mode=w8: int8 weights; w8a8: int8 weights and activations, with
scales calibrated on training batches."""

import json

from jaxlab.commands import common, options
from jaxlab.commands.options import Flag

USAGE = ('jaxlab quantize --workdir=DIR [--checkpoint=best] [--mode=w8|w8a8] '
         '[--calibration_batches=10]',)
FLAGS = (
    options.WORKDIR, options.CHECKPOINT,
    Flag('mode', 'string', 'w8', 'w8 (int8 weights) or w8a8 (int8 weights and activations, '
         'with scales calibrated on training batches).'),
    Flag('calibration_batches', 'integer', None, 'With --mode=w8a8: how many training batches '
         'set the activation scales (default 10).'),
    *options.MULTI_HOST,
)
POSITIONAL = None


def run(args):
  common.no_positional('quantize', args)
  workdir = common.workdir(args)
  common.start_runtime(args)
  main(workdir, args.checkpoint, args.mode, args.calibration_batches)
  return 0


def format_report(report):
  rows = [('', 'float32', f'int8 ({report["mode"]})', 'int8 / float')]
  for name, value in report['float_metrics'].items():
    rows.append((name, f'{value:.4f}', f'{report["int8_metrics"][name]:.4f}',
                 f'{report["metric_change"][name]:+.4f} (change)'))
  rows.append(('weights (bytes)', f'{report["float_weight_bytes"]:,}',
               f'{report["int8_weight_bytes"]:,}', f'{report["size_ratio"]:.3f}'))
  rows.append((f'ms per batch of {report["timing_batch_size"]} ({report["backend"]})',
               f'{report["float_seconds_per_batch"] * 1e3:.3f}',
               f'{report["int8_seconds_per_batch"] * 1e3:.3f}',
               f'{1 / report["speedup"]:.3f} (speed-up {report["speedup"]:.2f}x)'))
  widths = [max(len(row[i]) for row in rows) for i in range(4)]
  return '\n'.join('  '.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                   for row in rows)


def main(workdir, which='best', mode='w8', calibration_batches=None):
  """Quantizes, prints the comparison and writes it as JSON; returns the report."""
  from jaxlab import storage  # pylint: disable=g-import-not-at-top
  from jaxlab.inference import quantize  # pylint: disable=g-import-not-at-top
  from jaxlab.workdir import files as workdir_files  # pylint: disable=g-import-not-at-top
  report = quantize.quantize(workdir, which, mode, calibration_batches)
  print(f'Quantized step {report["step"]} of {workdir} ({mode}) into '
        f'{report["quantized_workdir"]}')
  print(format_report(report))
  path = workdir_files.path(storage.absolute(workdir), workdir_files.quantize_report(mode))
  storage.write_text(path, json.dumps(report, indent=2) + '\n')
  print(f'Wrote {path}. Evaluate or predict with it: jaxlab eval '
        f'--workdir={report["quantized_workdir"]}')
  return report
