"""The TFDS start-to-exit benchmark runs in short mode and reports every figure."""

import pytest

from benchmarks import tfds_start


@pytest.mark.slow
def test_short_benchmark_reports_positive_seconds_and_ratios():
  result = tfds_start.measure(short=True)
  assert result['build_s'] > 0
  for cache in ('on', 'off'):
    section = result[f'compilation_cache_{cache}']
    for field in ('tfds_cold_cache_s', 'tfds_warm_cache_s', 'npz_s', 'warm_over_npz',
                  'cold_over_npz'):
      assert section[field] > 0, (cache, field)
    assert all(a > 0.5 for runs in section['test_accuracy'].values() for a in runs)
