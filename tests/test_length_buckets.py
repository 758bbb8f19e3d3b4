"""Length buckets (jaxlab.data.buckets, order.BucketedOrder): every batch and every block
of steps_per_loop steps is of one bucket, an epoch still holds every kept example once,
the order is a function of the seed alone, a stream resumed mid-run reads what a straight
one would, its blocks are cut to their bucket's bound, and the speech sets derive their
buckets from data.num_buckets or data.bucket_boundaries."""

import pickle

import jax
import ml_collections
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxlab.data import buckets, order, sources, speech_examples, stream
from jaxlab.errors import UserError

N, BATCH, STEPS_PER_EPOCH, LOOP, NUM_STEPS = 103, 4, 25, 5, 60
BOUNDS = (30, 60, 100)


def lengths(n=N):
  return np.random.default_rng(3).integers(1, BOUNDS[-1] + 1, n).astype(np.int32)


def bucketed(seed=0, steps_per_loop=LOOP):
  return order.BucketedOrder(seed, N, BATCH, STEPS_PER_EPOCH,
                             bucket_of=buckets.assign(lengths(), BOUNDS), bounds=BOUNDS,
                             steps_per_loop=steps_per_loop)


def test_each_epoch_keeps_the_plain_orders_examples_once_sorted_into_one_bucket_batches():
  epoch_order, bucket_of = bucketed(), buckets.assign(lengths(), BOUNDS)
  for epoch in range(3):
    rows = epoch_order.epoch_rows(epoch)
    assert sorted(rows) == list(range(N))  # a permutation: every example once
    kept = STEPS_PER_EPOCH * BATCH
    assert set(rows[:kept]) == set(order.epoch_permutation(0, epoch, N)[:kept])
    batches = bucket_of[rows[:kept].reshape(STEPS_PER_EPOCH, BATCH)]
    mixed = sum(len(set(b)) > 1 for b in batches)
    assert mixed <= len(BOUNDS) - 1  # only where one bucket's rows run out
    steps = range(epoch * STEPS_PER_EPOCH, (epoch + 1) * STEPS_PER_EPOCH)
    assert list(epoch_order.step_buckets(steps[0], steps[-1] + 1)) == list(batches.max(1))


def test_every_block_has_one_bucket_that_holds_all_its_examples():
  epoch_order, bucket_of = bucketed(), buckets.assign(lengths(), BOUNDS)
  step, seen = 0, []
  while step < NUM_STEPS:
    start, end = order.block_span(step, LOOP, NUM_STEPS)
    bucket = epoch_order.block_bucket(start, end)
    rows = np.concatenate([epoch_order.batch_rows(s) for s in range(start, end)])
    assert bucket_of[rows].max() == bucket  # padded to the longest it holds, no further
    seen.append(bucket)
    step = end
  # Blocks mostly hold one bucket's batches: on average well below the longest bound.
  assert set(seen) == {0, 1, 2} and np.mean([BOUNDS[b] for b in seen]) < 0.85 * BOUNDS[-1]


def test_the_bucketed_order_is_a_function_of_the_seed_and_survives_pickling():
  a, b = bucketed(), bucketed()
  assert all(np.array_equal(a.batch_rows(s), b.batch_rows(s)) for s in range(NUM_STEPS))
  assert not all(np.array_equal(a.batch_rows(s), bucketed(seed=1).batch_rows(s))
                 for s in range(NUM_STEPS))
  a.batch_rows(40)  # filled its cache
  copy = pickle.loads(pickle.dumps(a))  # as Grain's workers get it
  assert all(np.array_equal(a.batch_rows(s), copy.batch_rows(s)) for s in range(NUM_STEPS))
  assert a.describe() == dict(seed=0, batch_size=BATCH, steps_per_epoch=STEPS_PER_EPOCH,
                              num_examples=N, buckets=list(BOUNDS), steps_per_loop=LOOP)


SPEC = {'audio': ((BOUNDS[-1],), np.float32), 'audio_length': ((), np.int32)}
SHAPES = tuple({'audio': (bound,)} for bound in BOUNDS)


def padded_source():
  """Examples whose audio is 1.0 up to their length, 0 after (padded to the longest)."""
  n = lengths()
  audio = (np.arange(BOUNDS[-1])[None, :] < n[:, None]).astype(np.float32)
  return sources.ArraySource({'audio': audio, 'audio_length': n}, name='lengths')


def read_blocks(start_step, resume_state=None):
  mesh = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ('data', 'fsdp'))
  with stream.TrainStream(
      padded_source(), example_spec=SPEC, seed=0, batch_size=BATCH,
      steps_per_epoch=STEPS_PER_EPOCH, num_steps=NUM_STEPS, start_step=start_step,
      block_end=lambda s: order.block_span(s, LOOP, NUM_STEPS)[1],
      sharding=NamedSharding(mesh, P(None, ('data', 'fsdp'))), resume_state=resume_state,
      epoch_order=bucketed(), buckets=buckets.Buckets('audio_length', BOUNDS, SHAPES)) as blocks:
    return [(b.start, {k: np.asarray(v) for k, v in b.arrays.items()}, b.state) for b in blocks]


def test_streamed_blocks_are_cut_to_their_bucket_and_resume_where_they_stopped():
  epoch_order, straight = bucketed(), read_blocks(0)
  for start, arrays, _ in straight:
    end = start + len(arrays['audio'])
    bound = BOUNDS[epoch_order.block_bucket(start, end)]
    assert arrays['audio'].shape == (end - start, BATCH, bound)
    rows = np.stack([epoch_order.batch_rows(s) for s in range(start, end)])
    np.testing.assert_array_equal(arrays['audio_length'], lengths()[rows])
    # Only padding was cut: each example's ones are all there.
    np.testing.assert_array_equal(arrays['audio'].sum(-1), arrays['audio_length'])
  assert len({a['audio'].shape[-1] for _, a, _ in straight}) > 1
  resumed = read_blocks(30, straight[5][2])  # from the state saved at step 30
  assert [s for s, _, _ in resumed] == [s for s, _, _ in straight[6:]]
  for (_, mine, _), (_, theirs, _) in zip(resumed, straight[6:]):
    assert all(np.array_equal(mine[k], theirs[k]) for k in theirs)
  with pytest.raises(ValueError, match='another example order'):
    read_blocks(30, dict(straight[5][2], buckets=[50, 100]))


def speech_config(**overrides):
  return ml_collections.ConfigDict(dict(dict(num_buckets=0, bucket_boundaries=()), **overrides))


def test_speech_buckets_come_from_duration_quantiles_or_given_bounds():
  info = speech_examples.speech_info('tiny', 4.5, {'kind': 'characters'})
  durations = np.random.default_rng(0).uniform(1.0, 4.5, 400)
  samples = (durations * 16000).astype(np.int32)
  assert speech_examples.length_buckets(speech_config(), info, samples) is None
  quartiles = speech_examples.length_buckets(speech_config(num_buckets=4), info, samples)
  assert quartiles.bounds[-1] == 72000 and len(quartiles.bounds) == 4  # 4.5 s, rounded up
  assert all(b % 1600 == 0 for b in quartiles.bounds)  # rounded up to 0.1 s
  shares = np.bincount(quartiles.of_examples(sources.ArraySource({'audio_length': samples})))
  assert shares.min() > 80  # about a quarter each
  given = speech_examples.length_buckets(speech_config(bucket_boundaries=(2.0, 3.0)), info,
                                         samples)
  assert given.bounds == (32000, 48000, 72000)
  shorter = speech_examples.length_buckets(speech_config(num_buckets=2), info, samples // 2)
  assert shorter.bounds[-1] == -(-samples.max() // 2 // 1600) * 1600  # the longest, not 4.5 s
  assert given.shapes[0] == {'audio': (32000,), 'labels': (speech_examples.output_frames(32000),)}
  with pytest.raises(UserError, match='goes past the longest'):
    speech_examples.length_buckets(speech_config(bucket_boundaries=(5.0,)), info, samples)
