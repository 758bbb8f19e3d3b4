"""Speech recognition's pieces: the CTC loss against a brute-force sum over alignments,
padding that changes no loss, greedy and prefix beam search decoding against brute force,
WER/CER against jiwer called directly, transcripts, and manifests with bad rows."""

import itertools
import json
import wave

import jax
import jax.numpy as jnp
import jiwer
import ml_collections
import numpy as np
import pytest
from flax import nnx

from jaxlab.data import buckets, speech_examples, speech_manifest, speech_sets, transcripts
from jaxlab.errors import UserError
from jaxlab.models import speech_ctc
from jaxlab.tasks import asr_metrics, ctc_decoding
from jaxlab.tasks.speech_recognition import SpeechRecognition

HOP = 160


def collapse(path):
  """CTC's many-to-one map: merge repeats, then drop blanks (0)."""
  return tuple(c for i, c in enumerate(path) if c != 0 and (i == 0 or c != path[i - 1]))


def prefix_probabilities(log_probs_TxV):
  """{label sequence: its probability summed over every alignment}, by enumeration."""
  found = {}
  num_frames, vocab = log_probs_TxV.shape
  for path in itertools.product(range(vocab), repeat=num_frames):
    p = np.exp(sum(log_probs_TxV[t, c] for t, c in enumerate(path)))
    found[collapse(path)] = found.get(collapse(path), 0.0) + p
  return found


def task_for(info, beam_size=1):
  config = ml_collections.ConfigDict(dict(model=dict(name='speech_ctc'),
                                          decode=dict(beam_size=beam_size)))
  return SpeechRecognition(config, info)


INFO = speech_examples.speech_info('tiny', 0.5, {'kind': 'characters'})


def samples_for_frames(frames):
  """An audio length whose model output has exactly `frames` valid frames."""
  return next(n for n in range(0, 8000, HOP) if speech_examples.output_frames(n) == frames)


@pytest.mark.parametrize('labels', [(1,), (1, 2), (2, 2), (1, 2, 1)])
def test_ctc_loss_equals_the_brute_force_sum_over_alignments_and_ignores_padded_frames(labels):
  rng = np.random.default_rng(len(labels))
  frames, vocab, padded = 5, 3, 9
  logits = rng.normal(size=(1, padded, vocab)).astype(np.float32) * 2
  logits[:, frames:] = rng.normal(size=(1, padded - frames, vocab)) * 50  # garbage past the end
  label_row = np.zeros((1, 6), np.int32)
  label_row[0, :len(labels)] = labels
  batch = dict(audio_length=jnp.array([samples_for_frames(frames)]), labels=jnp.asarray(label_row),
               label_length=jnp.array([len(labels)]))
  loss = task_for(INFO).utterance_losses(jnp.asarray(logits), batch)
  log_probs = np.asarray(jax.nn.log_softmax(jnp.asarray(logits[0, :frames]), -1), np.float64)
  expected = -np.log(prefix_probabilities(log_probs)[tuple(labels)])
  np.testing.assert_allclose(float(loss[0]), expected, rtol=1e-4)


def test_task_loss_is_per_label_token_and_skips_masked_examples():
  task = task_for(INFO)
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(size=(2, 6, 4)).astype(np.float32))
  batch = dict(audio_length=jnp.array([samples_for_frames(6)] * 2),
               labels=jnp.array([[1, 2, 0], [3, 0, 0]]), label_length=jnp.array([2, 1]),
               mask=jnp.array([1.0, 0.0]))
  per_utterance = task.utterance_losses(logits, batch)
  loss, _ = task.loss(logits, batch)
  np.testing.assert_allclose(float(loss), float(per_utterance[0]) / 2, rtol=1e-6)


def tiny_model(encoder):
  """The jitted eval-mode forward pass of a one-block speech_ctc model."""
  with nnx.use_eager_sharding(False):
    model = speech_ctc.create((8000,), transcripts.vocab_size({'kind': 'characters'}),
                              rngs=nnx.Rngs(0), encoder=encoder, num_layers=1, embed_dim=32,
                              subsample_features=8)
  model.eval()
  graph, state = nnx.split(model)
  forward = jax.jit(lambda state, audio, lengths: nnx.merge(graph, state)(audio, lengths))
  return lambda audio, lengths: forward(state, audio, lengths)


@pytest.mark.parametrize('encoder', ['conformer', 'transformer', 'gru'])
def test_padding_the_audio_or_the_labels_changes_no_loss_nor_does_a_length_buckets_cut(encoder):
  forward = tiny_model(encoder)
  rng = np.random.default_rng(1)
  lengths = np.array([5000, 7900], np.int32)
  audio = rng.normal(size=(2, 8000)).astype(np.float32) * (np.arange(8000) < lengths[:, None])
  tokenizer = transcripts.Characters()
  labels, label_lengths = transcripts.label_rows(['a cat', 'it is'], tokenizer)

  def loss(extra_samples, extra_labels):
    padded = np.pad(audio, ((0, 0), (0, extra_samples)))
    batch = dict(audio_length=jnp.asarray(lengths), labels=jnp.asarray(
        np.pad(labels, ((0, 0), (0, extra_labels)))), label_length=jnp.asarray(label_lengths))
    return float(task_for(INFO).loss(forward(jnp.asarray(padded), batch['audio_length']),
                                     batch)[0])

  reference = loss(0, 0)
  assert np.isfinite(reference)
  np.testing.assert_allclose(loss(4000, 0), reference, rtol=1e-5)
  np.testing.assert_allclose(loss(2400, 7), reference, rtol=1e-5)
  # A length bucket's batch: the same rows cut to the bucket's bound (jaxlab.data.buckets).
  bound = 7920
  cut = buckets.crop(dict(audio=audio, labels=labels), {
      'audio': (bound,), 'labels': (speech_examples.output_frames(bound),)}, lead=1)
  batch = dict(audio_length=jnp.asarray(lengths), labels=jnp.asarray(cut['labels']),
               label_length=jnp.asarray(label_lengths))
  np.testing.assert_allclose(float(task_for(INFO).loss(
      forward(jnp.asarray(cut['audio']), batch['audio_length']), batch)[0]), reference, rtol=1e-5)


def peaked_log_probs(rng, shape, confidence):
  best = rng.integers(0, shape[-1], shape[:-1])
  logits = rng.normal(size=shape) + confidence * np.eye(shape[-1])[best]
  return jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), -1)


def test_greedy_merges_repeats_drops_blanks_and_stops_at_the_length():
  log_probs = jnp.log(jnp.asarray(np.eye(4)[[[1, 1, 0, 1, 2, 2, 3, 3]]], jnp.float32) + 1e-6)
  tokens, counts, score = ctc_decoding.greedy(log_probs, jnp.array([6]))
  assert tokens[0, :counts[0]].tolist() == [1, 1, 2] and tokens[0, counts[0]:].max() == 0
  assert float(score[0]) == pytest.approx(6 * np.log(1 + 1e-6), abs=1e-4)


def test_prefix_beam_search_at_beam_1_equals_greedy():
  rng = np.random.default_rng(2)
  for _ in range(10):
    log_probs = peaked_log_probs(rng, (4, 20, 7), confidence=6.0)
    lengths = jnp.array([20, 13, 4, 1])
    greedy = ctc_decoding.greedy(log_probs, lengths)
    beam = ctc_decoding.beam_search(log_probs, lengths, 1)
    np.testing.assert_array_equal(beam[0], greedy[0])
    np.testing.assert_array_equal(beam[1], greedy[1])


def test_prefix_beam_search_finds_the_most_probable_prefix_and_its_exact_probability():
  rng = np.random.default_rng(3)
  for _ in range(6):
    log_probs = jax.nn.log_softmax(jnp.asarray(rng.normal(size=(1, 5, 3)) * 1.5, jnp.float32))
    probabilities = prefix_probabilities(np.asarray(log_probs[0], np.float64))
    best = max(probabilities, key=probabilities.get)
    # 32 beams hold every prefix of 5 frames over 2 labels: nothing is pruned.
    tokens, count, score = ctc_decoding.beam_search(log_probs, jnp.array([5]), 32)
    assert tuple(tokens[0, :count[0]].tolist()) == best
    np.testing.assert_allclose(np.exp(float(score[0])), probabilities[best], rtol=1e-4)


def test_beam_search_is_never_less_probable_than_greedy_and_compiles():
  rng = np.random.default_rng(4)
  log_probs = peaked_log_probs(rng, (3, 12, 5), confidence=1.0)
  lengths = jnp.array([12, 8, 3])
  tokens, counts, scores = jax.jit(ctc_decoding.beam_search, static_argnums=2)(
      log_probs, lengths, 4)
  for b in range(3):
    probabilities = prefix_probabilities(np.asarray(log_probs[b, :int(lengths[b])], np.float64)) \
        if lengths[b] <= 8 else None
    if probabilities:
      greedy_tokens, greedy_count, _ = ctc_decoding.greedy(log_probs[b:b + 1], lengths[b:b + 1])
      greedy_prefix = tuple(greedy_tokens[0, :greedy_count[0]].tolist())
      found = tuple(tokens[b, :counts[b]].tolist())
      assert probabilities[found] >= probabilities[greedy_prefix] - 1e-9


def test_wer_and_cer_equal_jiwer_called_directly():
  references = ['the cat sat on the mat', 'beautiful is better than ugly', 'a b c']
  hypotheses = ['the cat sat at the mat', 'beautiful better than an ugly', '']
  got = asr_metrics.scores(references, hypotheses)
  words = jiwer.process_words(references, hypotheses)
  assert got['wer'] == pytest.approx(jiwer.wer(references, hypotheses))
  assert got['cer'] == pytest.approx(jiwer.cer(references, hypotheses))
  assert (got['substitutions'], got['deletions'], got['insertions']) == (
      words.substitutions, words.deletions, words.insertions) == (1, 4, 1)
  worst = asr_metrics.worst(references, hypotheses, 2)
  assert [row['index'] for row in worst] == [2, 1] and worst[0]['word_errors'] == 3


def test_eval_metrics_decode_both_decoders_and_score_with_jiwer():
  task = task_for(INFO, beam_size=4)
  tokenizer = transcripts.Characters()
  refs, ref_lengths = transcripts.label_rows(['a cat', 'it is'], tokenizer, 8)
  hyps, hyp_lengths = transcripts.label_rows(['a cat', 'it'], tokenizer, 8)
  outputs = dict(loss_sum=np.array([2.0, 3.0]), labels=refs, label_length=ref_lengths,
                 tokens=hyps, counts=hyp_lengths, greedy_tokens=refs * 0,
                 greedy_counts=ref_lengths * 0)
  metrics = task.eval_metrics(outputs)
  assert metrics['wer'] == pytest.approx(jiwer.wer(['a cat', 'it is'], ['a cat', 'it']))
  assert metrics['greedy_wer'] == 1.0 and metrics['loss'] == pytest.approx(5.0 / 10)
  assert 'greedy WER 1.0000' in task.eval_line(metrics)


def test_transcripts_are_normalised_and_round_trip_through_characters():
  assert transcripts.normalize("Now is better than never.\n  Although never -- it's *right*!") \
      == "now is better than never although never it's right"
  tokenizer = transcripts.Characters()
  ids = tokenizer.encode("it's a test")
  assert ids.min() >= 1 and tokenizer.decode(ids) == "it's a test"
  assert tokenizer.vocab_size == 29


def write_wav(path, seconds, rate=16000):
  samples = (np.sin(np.arange(int(seconds * rate)) * 0.05) * 8000).astype(np.int16)
  with wave.open(str(path), 'wb') as out:
    out.setnchannels(1)
    out.setsampwidth(2)
    out.setframerate(rate)
    out.writeframes(samples.tobytes())


def manifest_config(path, **overrides):
  config = ml_collections.ConfigDict(dict(
      name='speech_manifest', path=str(path), validation_split=None, split_seed=0,
      skip_bad_records=True, max_audio_seconds=None, tokenizer='byte', vocab_size=512))
  config.update(overrides)
  return config


@pytest.fixture
def manifest_folder(tmp_path):
  for name, seconds, rate in (('a', 1.0, 16000), ('b', 1.5, 22050), ('c', 0.8, 8000)):
    write_wav(tmp_path / f'{name}.wav', seconds, rate)
  rows = [dict(audio_filepath='a.wav', text='Hello there.', duration=1.0),
          dict(audio_filepath='missing.wav', text='gone', duration=1.0),
          dict(audio_filepath='b.wav', text='', duration=1.5),
          dict(audio_filepath='c.wav', text='Fine, thanks!', duration=0.8)]
  (tmp_path / 'train.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
  (tmp_path / 'test.jsonl').write_text(json.dumps(dict(audio_filepath='b.wav',
                                                       text='B as in bee')) + '\n')
  return tmp_path


def test_manifest_rows_without_audio_or_text_are_skipped_and_counted(manifest_folder, capsys):
  splits = speech_manifest.load(manifest_config(manifest_folder))
  assert len(splits.train) == 2 and len(splits.test) == 1
  warning = capsys.readouterr().err
  assert 'skipped 2 of 4 rows' in warning and 'row 2: its audio file' in warning \
      and 'row 3: its text is empty' in warning
  first = splits.train[0]
  assert int(first['audio_length']) == 16000 and splits.info.sample_rate == 16000
  assert transcripts.Characters().decode(first['labels'][:first['label_length']]) == 'hello there'
  resampled = splits.test[0]  # 1.5 s at 22.05 kHz, read at 16 kHz
  assert int(resampled['audio_length']) == 24000
  assert splits.info.spec()['audio'][0] == (24000,)  # the longest utterance


def test_manifest_bad_row_stops_with_its_row_number_when_not_skipping(manifest_folder):
  with pytest.raises(UserError, match=r'Row 2 of .*train.jsonl cannot be used: its audio file'):
    speech_manifest.load(manifest_config(manifest_folder, skip_bad_records=False))


def test_a_single_manifest_holds_out_a_share_and_trains_sentencepiece(manifest_folder, tmp_path):
  lines = (manifest_folder / 'train.jsonl').read_text().splitlines()
  single = manifest_folder / 'all.jsonl'
  texts = ['the quick brown fox', 'jumps over the lazy dog', 'pack my box', 'with five dozen']
  single.write_text(''.join(json.dumps(dict(audio_filepath='a.wav', text=t)) + '\n'
                            for t in texts) + lines[1] + '\n')
  (tmp_path / 'run').mkdir()
  splits = speech_manifest.load(manifest_config(single, validation_split=0.25,
                                                       tokenizer='sentencepiece',
                                                       vocab_size=288), str(tmp_path / 'run'))
  assert (len(splits.train), len(splits.test)) == (3, 1)
  assert splits.info.tokenizer['kind'] == 'sentencepiece' and splits.info.vocab_size == 288
  tokenizer = transcripts.from_spec(splits.info.tokenizer, str(tmp_path / 'run'))
  row = splits.train[0]
  assert tokenizer.decode(row['labels'][:row['label_length']]) in texts


def test_librispeech_streams_from_prepared_tfds_and_bad_utterances_are_bad_records(tmp_path):
  from jaxlab.data import sources
  from tests import tfds_fakes
  from tests.conftest import load_config
  tfds_fakes.librispeech(str(tmp_path))
  config = load_config('librispeech_conformer', None, data__data_dir=str(tmp_path),
                       data__max_audio_seconds=1.3)
  splits = speech_sets.librispeech(config.data)
  assert (len(splits.train), len(splits.test)) == (12, 4)  # three training splits joined
  assert splits.info.spec()['audio'][0] == (20800,) and splits.info.vocab_size == 29
  characters = transcripts.Characters()
  first = splits.train[0]
  assert characters.decode(first['labels'][:first['label_length']]) == 'hello world'
  assert int(first['audio_length']) == 16000 and first['audio'].dtype == np.float32
  assert characters.decode(splits.test[1]['labels'][:splits.test[1]['label_length']]) == "it's a test"
  with pytest.raises(sources.BadRecord, match='over data.max_audio_seconds=1.3'):
    splits.train[2]  # 2 s
  with pytest.raises(UserError, match='reads characters'):
    speech_sets.librispeech(load_config('librispeech_conformer', None,
                                        data__tokenizer='sentencepiece').data)


def test_librispeech_recipe_validates_and_knows_its_shapes_without_data():
  from jaxlab.config import validation
  from jaxlab.data import registry
  from tests.conftest import load_config
  config = load_config('librispeech_conformer', None)
  validation.validate(config)
  info, num_train = registry.known_info(config.data)
  assert num_train == 281241 and info.spec()['audio'][0] == (17 * 16000,)
  assert info.spec()['labels'][0] == (speech_examples.output_frames(17 * 16000),)
