"""benchmarks/scaling.py: its points train with jaxlab's session and report what they
measured; its report section and plots show every sweep. (The sweeps at size run in the
benchmark suite, not here.)"""

import json
import math
import pathlib

import numpy as np
import pytest

from benchmarks import report, scaling


def test_attention_share_is_the_part_of_the_flops_that_grows_with_the_length():
  per_token = lambda length: 5e6 + 2e3 * length  # a linear part and attention's
  rows = [dict(seq_len=length, batch=8192 // length, flops_per_step=per_token(length) * 8192)
          for length in (128, 512, 2048)]
  for row in rows:
    expected = 2e3 * row['seq_len'] / per_token(row['seq_len'])
    assert report._attention_share(row, rows) == pytest.approx(expected)  # pylint: disable=protected-access
  assert report._attention_share(rows[0], rows[:1]) is None  # pylint: disable=protected-access


def test_written_rows_are_memory_mapped_arrays_of_the_asked_size(tmp_path):
  scaling.write_rows(tmp_path / 'rows', 2500, chunk=1000)
  images = np.load(tmp_path / 'rows/x_train.npy', mmap_mode='r')
  labels = np.load(tmp_path / 'rows/y_train.npy', mmap_mode='r')
  assert images.shape == (2500, *scaling.ROW_SHAPE) and images.dtype == np.uint8
  assert labels.shape == (2500,) and set(np.unique(labels)) == set(range(10))
  assert images[:1000].std() > 0 and images[2000:].std() > 0  # every chunk written
  assert np.load(tmp_path / 'rows/x_test.npy').shape == (100, *scaling.ROW_SHAPE)


@pytest.mark.slow  # compiles two small training blocks (~10 s)
def test_points_train_with_the_session_and_report_their_figures(tmp_path):
  sizes = dict(scaling.SHORT, dataset=dict(sizes=(600,), batch=16, steps=3))
  streamed = next(scaling.dataset_points(sizes['dataset'], 1, str(tmp_path)))
  figures = scaling.measure(streamed)
  assert figures['placement'] == 'stream' and math.isfinite(figures['final_loss'])
  assert figures['examples_per_second'] == pytest.approx(16 * figures['steps_per_second'])
  assert figures['flops_per_step'] > 0 and figures['compile_seconds'] > 0
  assert figures['gflops'] == pytest.approx(
      figures['flops_per_step'] * figures['steps_per_second'] / 1e9)
  assert figures['step_peak_bytes'] > 0 and figures['peak_rss_mb'] > 50
  assert 0 < figures['private_rss_mb'] < figures['peak_rss_mb']
  unrolled = next(p for p in scaling.depth_points(sizes['depth'], 1) if not p['scanned'])
  figures = scaling.measure(unrolled)
  assert figures['placement'] == 'device' and math.isfinite(figures['final_loss'])
  assert figures['compile_seconds'] > 0 and figures['flops_per_step'] > 0


def _rows():
  rows = []
  for batch in (8, 64):
    rows.append(dict(sweep='batch', experiment='mnist_mlp', batch=batch, steps_per_loop=4,
                     steps_per_second=100.0 / batch, examples_per_second=100.0,
                     gflops=batch / 4, peak_gflops=150.0, compile_seconds=1.0))
  for length in (64, 128):
    rows.append(dict(sweep='sequence', seq_len=length, width=32, batch=512 // length,
                     examples_per_second=1000.0 / length, gflops=3.0,
                     flops_per_step=(1e5 + 10 * length) * 512, step_peak_bytes=2**20 * length,
                     peak_rss_mb=500.0))
  for count in (1000, 10000):
    rows.append(dict(sweep='dataset', examples=count, batch=32, steps_per_second=50.0,
                     peak_rss_mb=400.0 + count / 1000, private_rss_mb=300.0,
                     file_rss_mb=100.0 + count / 1000))
  for scanned in (True, False):
    for layers in (1, 2):
      rows.append(dict(sweep='depth', layers=layers, scanned=scanned,
                       compile_seconds=layers * (1 if scanned else 2),
                       steps_per_second=10.0 / layers))
  return rows


def test_report_shows_every_sweep_with_its_plot(tmp_path):
  plots = scaling.draw(_rows(), str(tmp_path))
  assert plots == [f'scaling_{sweep}.png' for sweep in scaling.SWEEPS]
  for name in plots:
    assert (tmp_path / name).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  section = report.scaling_section(dict(
      command='python -m benchmarks.scaling', short=False, rows=_rows(), plots=plots,
      seconds=60.0, load_average_1min=0.5,
      environment=dict(date='2026-12-07', git=dict(commit='abc'), machine=dict(logical_cpus=2))))
  for heading in ('### Global batch', '### Language model: sequence length',
                  '### Streamed training set size', '### Language model: depth'):
    assert heading in section
  assert '| mnist_mlp | 64 | 4 | 1.6 | 100 | 16.0 | 11 | 1.00 |' in section
  assert '| 10,000 | 32 | 50.0 | 410 | 300 | 110 |' in section
  assert '| 2 | 2.00 | 4.00 | 5.0 | 5.0 |' in section
  assert all(f'![{sweep}](scaling_{sweep}.png)' in section for sweep in scaling.SWEEPS)
  assert report.scaling_section(None).startswith('Not measured')


def test_the_page_includes_the_stored_scaling_section():
  stored = pathlib.Path(scaling.ROOT) / 'benchmarks' / report.SCALING_JSON
  if not stored.exists():
    pytest.fail(f'{stored} is missing: run `python -m benchmarks.scaling --out={stored}`')
  page = (pathlib.Path(scaling.ROOT) / 'benchmarks/RESULTS.md').read_text()
  section = report.scaling_section(json.loads(stored.read_text()))
  assert section in page
