"""The streaming placement: Grain reads the rows order.batch_rows names, places them on the
devices, resumes exactly, skips or stops on bad records, and splits reading over processes."""

import io
import os
import subprocess
import sys
import time

import jax
import numpy as np
import portpicker
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxlab.data import order, sources, stream
from tests.conftest import ROOT

NUM_EXAMPLES = 50
BAD = {3, 17, 40}
SPEC = {'index': ((), np.int32), 'image': ((2, 3), np.uint8), 'key': ((3,), np.int64),
        'noise': ((), np.float32)}


def block_end(step):
  return min((step // 7 + 1) * 7, 20)  # blocks [0, 7), [7, 14), [14, 20): the last shorter


def tag_transform(example, key):
  """Records its key, and draws a number from it (deterministic host augmentation)."""
  noise = np.random.default_rng([k % 2**32 for k in key]).random(dtype=np.float32)
  return dict(example, key=np.array(key, np.int64), noise=noise)


# 6 steps of 8 per epoch from 50 examples: epochs turn at steps 6, 12 and 18.
TRAIN = dict(example_spec=SPEC, seed=7, batch_size=8, steps_per_epoch=6, num_steps=20,
             start_step=0, block_end=block_end, transform=tag_transform)


def make_source(n):
  index = np.arange(n, dtype=np.int32)
  image = np.broadcast_to((index % 256).astype(np.uint8)[:, None, None], (n, 2, 3))
  return sources.ArraySource({'index': index, 'image': image}, name='digits')


class RecordingSource:
  """A source that remembers which rows it was asked for and fails on the `bad` ones."""

  def __init__(self, base, bad=()):
    self.base, self.bad, self.asked = base, set(bad), []

  def __len__(self):
    return len(self.base)

  def __getitem__(self, index):
    self.asked.append(index)
    if index in self.bad:
      raise sources.BadRecord(self, index, 'broken on purpose')
    return self.base[index]

  def __repr__(self):
    return 'recording'


def one_device(spec):
  mesh = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ('data', 'fsdp'))
  return NamedSharding(mesh, spec)


def read_all(source, **overrides):
  """Every block of a stream as numpy: [(start, end, arrays, bad_records, state)]."""
  options = dict(TRAIN, sharding=one_device(P(None, ('data', 'fsdp'))), **overrides)
  with stream.TrainStream(source, **options) as blocks:
    return [(b.start, b.end, {k: np.asarray(v) for k, v in b.arrays.items()}, b.bad_records,
             b.state) for b in blocks]


def want_rows(step):
  return order.batch_rows(TRAIN['seed'], step, TRAIN['steps_per_epoch'], TRAIN['batch_size'],
                          NUM_EXAMPLES)


def assert_same_blocks(got, want):
  assert [(s, e, bad, state) for s, e, _, bad, state in got] == \
         [(s, e, bad, state) for s, e, _, bad, state in want]
  for (_, _, arrays, _, _), (_, _, expected, _, _) in zip(got, want):
    assert arrays.keys() == expected.keys()
    for name in arrays:
      np.testing.assert_array_equal(arrays[name], expected[name], err_msg=name)


def test_blocks_hold_the_rows_the_order_names_over_epochs_and_uneven_blocks():
  blocks = read_all(make_source(NUM_EXAMPLES))
  assert [(s, e) for s, e, *_ in blocks] == [(0, 7), (7, 14), (14, 20)]
  for start, end, arrays, bad, state in blocks:
    assert state['step'] == end and not bad
    assert arrays['index'].shape == (end - start, 8)
    assert arrays['image'].shape == (end - start, 8, 2, 3)
    assert arrays['mask'].dtype == np.float32 and (arrays['mask'] == 1).all()
    for i, step in enumerate(range(start, end)):
      np.testing.assert_array_equal(arrays['index'][i], want_rows(step))
      np.testing.assert_array_equal(arrays['image'][i, :, 1, 2], want_rows(step))


def test_transform_gets_seed_step_and_position_keys_and_is_applied():
  blocks = read_all(make_source(NUM_EXAMPLES))
  again = read_all(make_source(NUM_EXAMPLES))
  for (start, end, arrays, _, _), (_, _, repeat, _, _) in zip(blocks, again):
    steps, positions = np.meshgrid(np.arange(start, end), np.arange(8), indexing='ij')
    np.testing.assert_array_equal(arrays['key'][..., 0], 7)
    np.testing.assert_array_equal(arrays['key'][..., 1], steps)
    np.testing.assert_array_equal(arrays['key'][..., 2], positions)
    np.testing.assert_array_equal(arrays['noise'], repeat['noise'])
    assert len(np.unique(arrays['noise'])) == arrays['noise'].size  # a fresh draw per slot


def test_zero_and_two_workers_give_identical_blocks():
  source = RecordingSource(make_source(NUM_EXAMPLES), bad=BAD)
  assert_same_blocks(read_all(source, num_workers=2), read_all(source, num_workers=0))


def test_resume_from_a_block_state_equals_the_uninterrupted_stream():
  source = make_source(NUM_EXAMPLES)
  straight = read_all(source)
  state = straight[0][4]
  resumed = read_all(source, start_step=state['step'], resume_state=state)
  assert_same_blocks(resumed, straight[1:])
  # The state holds only the step and the order: it restores under any worker count.
  assert_same_blocks(read_all(source, start_step=7, resume_state=state, num_workers=1),
                     straight[1:])


def test_resume_state_that_does_not_fit_is_refused():
  state = read_all(make_source(NUM_EXAMPLES))[0][4]
  with pytest.raises(ValueError, match='start_step is 14'):
    read_all(make_source(NUM_EXAMPLES), start_step=14, resume_state=state)
  with pytest.raises(ValueError, match="'seed': \\(7, 8\\)"):
    read_all(make_source(NUM_EXAMPLES), start_step=7, resume_state=state, seed=8)


def test_bad_records_are_zeros_with_mask_zero_and_reported():
  blocks = read_all(RecordingSource(make_source(NUM_EXAMPLES), bad=BAD))
  for start, end, arrays, bad, _ in blocks:
    rows = np.stack([want_rows(step) for step in range(start, end)])
    is_bad = np.isin(rows, list(BAD))
    np.testing.assert_array_equal(arrays['mask'], np.where(is_bad, 0.0, 1.0))
    np.testing.assert_array_equal(arrays['index'], np.where(is_bad, 0, rows))
    assert (arrays['image'][is_bad] == 0).all() and (arrays['key'][is_bad] == 0).all()
    assert sorted(index for _, index, _ in bad) == sorted(rows[is_bad].tolist())
    assert all(r == ('recording', r[1], 'broken on purpose') for r in bad)


def test_without_skipping_a_bad_record_stops_at_its_block_after_the_earlier_ones():
  first_bad = min(s for s in range(20) if np.isin(want_rows(s), list(BAD)).any())
  first_bad_block = first_bad // 7  # blocks of 7 steps
  source = RecordingSource(make_source(NUM_EXAMPLES), bad=BAD)
  options = dict(TRAIN, sharding=one_device(P(None, ('data', 'fsdp'))), skip_bad_records=False)
  with stream.TrainStream(source, **options) as blocks:
    for _ in range(first_bad_block):
      assert not blocks.next_block().bad_records
    with pytest.raises(sources.BadRecord) as error:
      blocks.next_block()
    assert error.value.source is source and error.value.index in BAD
    with pytest.raises(sources.BadRecord):  # and keeps saying so
      blocks.next_block()


def broken_transform(example, key):
  if key[1] == 9:
    raise RuntimeError('a bug in the transform')
  return tag_transform(example, key)


def test_an_error_in_reading_comes_after_the_complete_blocks_and_close_is_prompt():
  options = dict(TRAIN, sharding=one_device(P(None, ('data', 'fsdp'))), transform=broken_transform)
  with stream.TrainStream(make_source(NUM_EXAMPLES), **options) as blocks:
    assert blocks.next_block().end == 7
    with pytest.raises(RuntimeError, match='a bug in the transform'):
      blocks.next_block()
  long = dict(TRAIN, sharding=one_device(P(None, ('data', 'fsdp'))), num_steps=10**6,
              block_end=lambda step: step + 1)
  blocks = stream.TrainStream(make_source(NUM_EXAMPLES), **long)
  blocks.next_block()
  started = time.time()
  blocks.close()
  assert time.time() - started < 2
  assert not blocks._thread.is_alive()  # pylint: disable=protected-access
  with pytest.raises(RuntimeError, match='closed'):
    blocks.next_block()


def missing_module_transform(example, key):
  if key[1] == 9:
    raise ModuleNotFoundError("No module named 'tensorflow'", name='tensorflow')
  return tag_transform(example, key)


def test_a_missing_module_stops_the_stream_and_is_never_a_bad_record():
  from jaxlab.data import environment
  options = dict(TRAIN, sharding=one_device(P(None, ('data', 'fsdp'))),
                 transform=missing_module_transform)
  with stream.TrainStream(make_source(NUM_EXAMPLES), **options) as blocks:
    assert not blocks.next_block().bad_records  # steps 0-6
    with pytest.raises(environment.MissingDependency) as error:
      blocks.next_block()  # step 9 meets it
  assert "'tensorflow'" in str(error.value) and 'pip install tensorflow-cpu' in str(error.value)
  assert 'not a bad record' in str(error.value)


class FakeClock:

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


def test_bad_record_warnings_name_the_first_five_then_count_every_ten_seconds():
  from jaxlab.data import bad_records
  clock, out = FakeClock(), io.StringIO()
  log = bad_records.BadRecordLog(clock=clock, out=out)
  for second in range(30):  # a block with 3 bad records every second
    clock.now = float(second)
    log.add([('src', 3 * second + i, 'broken') for i in range(3)])
  log.flush()
  lines = out.getvalue().splitlines()
  named = [line for line in lines if 'skipped bad record' in line]
  counted = [line for line in lines if 'more bad records' in line]
  assert len(lines) == len(named) + len(counted) and len(named) == 5
  assert [line.split('skipped bad record ')[1].split(' ')[0] for line in named] == \
      ['0', '1', '2', '3', '4']
  # The 85 more: a count line once 10 s passed since the last line, the rest at the end.
  assert counted == [
      'jaxlab: warning: skipped 31 more bad records in the last 10 s (total 36)',
      'jaxlab: warning: skipped 30 more bad records in the last 10 s (total 66)',
      'jaxlab: warning: skipped 24 more bad records in the last 8 s (total 90)']
  assert log.count == 90 and log.first == [('src', 0, 'broken'), ('src', 1, 'broken'),
                                           ('src', 2, 'broken')]


def test_the_bad_record_budget_is_judged_only_past_the_minimum():
  from jaxlab.data import bad_records
  assert not bad_records.over_budget(999, 999, 0.01, 1000)  # all bad, too few read to judge
  assert bad_records.over_budget(11, 1000, 0.01, 1000)
  assert not bad_records.over_budget(10, 1000, 0.01, 1000)  # exactly the share: allowed
  assert not bad_records.over_budget(5000, 5000, 1.0, 1000)  # 1: never


def test_eval_batches_cover_every_example_once_in_order_padded():
  source = RecordingSource(make_source(NUM_EXAMPLES), bad={17})
  evals = stream.eval_batches(source, example_spec={'index': ((), np.int32)}, batch_size=8,
                              sharding=one_device(P(('data', 'fsdp'))))
  batches = [{k: np.asarray(v) for k, v in b.items()} for b in evals]
  index = np.concatenate([b['index'] for b in batches])
  mask = np.concatenate([b['mask'] for b in batches])
  assert len(batches) == 7 and all(b['index'].shape == (8,) for b in batches)
  want = np.arange(56)
  np.testing.assert_array_equal(mask, (want < NUM_EXAMPLES) & (want != 17))
  np.testing.assert_array_equal(index, np.where(mask > 0, want, 0))
  assert [index for _, index, _ in evals.bad_records] == [17]


def _worker(process_id, num_processes, port, out, device_order, devices):
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
  return subprocess.Popen([sys.executable, '-m', 'tests.stream_worker', str(process_id),
                           str(num_processes), str(port), str(out), device_order],
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


def _run(workers):
  for worker in workers:
    _, stderr = worker.communicate(timeout=120)
    assert worker.returncode == 0, stderr[-3000:]


def _all_train_rows():
  return np.concatenate([want_rows(step) for step in range(20)])


def _rows_read_at(positions):
  """The rows a process holding `positions` of every batch reads: 20 steps, then evaluation."""
  train = [want_rows(step)[positions] for step in range(20)]
  evaluation = [np.arange(b * 8, b * 8 + 8)[positions] for b in range(7)]
  rows = np.concatenate(train + evaluation)
  return sorted(rows[rows < NUM_EXAMPLES].tolist())


def test_eight_devices_hold_the_right_rows_in_each_shard(tmp_path):
  _run([_worker(0, 1, 0, tmp_path / 'eight.npz', 'ids', devices=8)])  # checks every shard
  result = np.load(tmp_path / 'eight.npz')
  rows = _all_train_rows()
  assert result['have_index'].all()
  np.testing.assert_array_equal(result['index'].reshape(-1),
                                np.where(np.isin(rows, list(BAD)), 0, rows))
  assert sorted(result['asked']) == _rows_read_at(range(8))

def test_two_processes_read_disjoint_rows_and_assemble_the_one_process_batches(tmp_path):
  port = portpicker.pick_unused_port()
  _run([_worker(i, 2, port, tmp_path / f'two_{i}.npz', 'interleaved', devices=2) for i in range(2)]
       + [_worker(0, 1, 0, tmp_path / 'one.npz', 'interleaved', devices=4)])
  first, second = (np.load(tmp_path / f'two_{i}.npz') for i in range(2))
  single = np.load(tmp_path / 'one.npz')
  for process, positions in ((first, [0, 1, 4, 5]), (second, [2, 3, 6, 7])):
    assert sorted(process['asked']) == _rows_read_at(positions)  # its own share, nothing more
  for name in [*SPEC, 'mask', *(f'eval_{n}' for n in [*SPEC, 'mask'])]:
    have = first[f'have_{name}'], second[f'have_{name}']
    assert not (have[0] & have[1]).any() and (have[0] | have[1]).all(), name
    # Process 0 holds the 1st and 3rd quarters of each batch: non-contiguous pieces.
    np.testing.assert_array_equal(np.where(have[0], first[name], second[name]), single[name], name)
  assert int(first['num_bad_eval']) + int(second['num_bad_eval']) == len(BAD)
