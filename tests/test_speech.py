"""Speech: the log-mel front end against librosa, the audio sets, WAV predict, and each
speech model trained end to end (and on 8 devices: tests/speech_worker.py)."""

import importlib.util
import json
import os
import subprocess
import sys
import wave

import numpy as np
import pytest

from tests.conftest import ROOT, load_config, read_metrics, run_cli

# librosa's reference in its own process, with numba replaced by pass-through decorators:
# numba would spend ~20 s compiling librosa's kernels at import, and the mel spectrogram
# uses none of them.
LIBROSA_REFERENCE = '''
import json, sys, types
import numpy as np
stub = types.ModuleType('numba')
def decorator(*args, **kwargs):
  if len(args) == 1 and callable(args[0]) and not kwargs:
    return args[0]
  return lambda function: function
for name in ('jit', 'njit', 'guvectorize', 'vectorize', 'stencil', 'generated_jit'):
  setattr(stub, name, decorator)
stub.prange = range
sys.modules['numba'] = stub
import librosa
for request in json.loads(sys.argv[1]):
  audio, out = np.load(request.pop('path')), request.pop('out')
  np.save(out, librosa.feature.melspectrogram(y=audio, **request).T)
'''


SETTINGS = [dict(sr=16000, n_fft=512, hop_length=160, n_mels=40),
            dict(sr=8000, n_fft=256, hop_length=100, n_mels=24, fmin=60.0, fmax=3600.0)]


def _chirp(rate):
  t = np.arange(rate) / rate
  noise = 0.05 * np.random.default_rng(0).standard_normal(len(t))
  return (0.4 * np.sin(2 * np.pi * 440 * t * (1 + t)) + noise).astype(np.float32)


@pytest.mark.skipif(importlib.util.find_spec('librosa') is None,
                    reason='librosa (the reference) is not installed: pip install .[test]')
def test_log_mel_matches_librosa(tmp_path):
  from jaxlab.models import log_mel
  for index, settings in enumerate(SETTINGS):
    np.save(tmp_path / f'audio{index}.npy', _chirp(settings['sr']))
  requests = [dict(settings, path=str(tmp_path / f'audio{index}.npy'),
                   out=str(tmp_path / f'reference{index}.npy'))
              for index, settings in enumerate(SETTINGS)]
  result = subprocess.run([sys.executable, '-c', LIBROSA_REFERENCE, json.dumps(requests)],
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  for index, settings in enumerate(SETTINGS):
    audio, reference = _chirp(settings['sr']), np.load(tmp_path / f'reference{index}.npy')
    options = dict(sample_rate=settings['sr'], n_fft=settings['n_fft'],
                   hop_length=settings['hop_length'], n_mels=settings['n_mels'],
                   fmin=settings.get('fmin', 0.0), fmax=settings.get('fmax'))
    ours = np.asarray(log_mel.power_mel(audio[None], **options))[0]
    assert ours.shape == reference.shape == (1 + len(audio) // settings['hop_length'],
                                             settings['n_mels'])
    assert np.abs(ours - reference).max() <= 1e-4 * reference.max()
    logged = np.asarray(log_mel.log_mel(audio[None], floor=1e-6, **options))[0]
    np.testing.assert_allclose(logged, np.log(np.maximum(reference, 1e-6)), atol=1e-4)


def test_synthetic_speech_is_deterministic_balanced_and_seeded():
  from jaxlab.data import audio_sets
  first, again = audio_sets.synthetic_clips(43, 0, 0), audio_sets.synthetic_clips(43, 0, 0)
  np.testing.assert_array_equal(first['audio'], again['audio'])
  np.testing.assert_array_equal(first['label'], again['label'])
  assert first['audio'].shape == (43, 16000) and first['audio'].dtype == np.float32
  assert np.all(np.abs(first['audio']) <= 1) and np.all(first['audio'].std(axis=1) > 0.01)
  counts = np.bincount(first['label'], minlength=10)
  assert counts.min() == 4 and counts.max() == 5  # 43 = 10 x 4 + 3
  other_seed, test_split = audio_sets.synthetic_clips(43, 1, 0), audio_sets.synthetic_clips(43, 0, 1)
  assert not np.allclose(other_seed['audio'], first['audio'])
  assert not np.allclose(test_split['audio'], first['audio'])


def test_spoken_digits_falls_back_to_synthetic_speech_without_espeak(monkeypatch, capsys):
  from jaxlab.data import audio_sets
  monkeypatch.setattr(audio_sets.shutil, 'which', lambda name: None)
  config = load_config('spoken_digits', None, data__num_train=20, data__num_test=10)
  splits = audio_sets.spoken_digits(config.data)
  assert splits.info.name == 'synthetic_speech' and len(splits.train) == 20
  lines = [line for line in capsys.readouterr().err.splitlines() if 'espeak-ng' in line]
  assert len(lines) == 1 and 'falls back to synthetic_speech' in lines[0]


def test_spoken_digits_split_holds_out_speakers_and_the_default_voice():
  """On the generation metadata (nothing spoken): no speaker in both splits, and the test
  holds espeak-ng's default voice at its default speed, as `espeak-ng -w` writes it."""
  from jaxlab.data import espeak_digits as recipe
  said = recipe.utterances(0)
  train = [u for u in said if u.split == 'train']
  test = [u for u in said if u.split == 'test']
  assert (len(train), len(test)) == recipe.split_sizes()
  assert not {u.variant for u in train} & {u.variant for u in test}
  assert not {u.voice for u in train} & {u.voice for u in test}
  assert '' not in {u.variant for u in train}  # espeak-ng's own speaker is never trained on
  defaults = [u for u in test if u.as_written]
  assert sorted(u.digit for u in defaults) == list(range(10))
  assert {(u.voice, u.speed, u.pitch) for u in defaults} == {('en', 175, 50)}
  assert {u.language for u in test} == set(recipe.LANGUAGES)
  for split in (train, test):  # drawn from ranges, not a few fixed values
    speeds, pitches = [u.speed for u in split], [u.pitch for u in split]
    assert 110 <= min(speeds) and max(speeds) <= 220 and len(set(speeds)) > 50
    assert 20 <= min(pitches) and max(pitches) <= 80 and len(set(pitches)) > 40
  assert np.bincount([u.digit for u in train]).tolist() == [len(train) // 10] * 10
  assert recipe.utterances(0) == said and recipe.utterances(1) != said


def test_spoken_digits_loader_splits_by_the_metadata(monkeypatch):
  from jaxlab.data import audio_sets, espeak_digits
  monkeypatch.setattr(audio_sets.shutil, 'which', lambda name: '/usr/bin/espeak-ng')
  def fake_clips(said, seed, cache_dir):  # the row index in place of the audio
    rows = np.arange(len(said), dtype=np.float32)
    return dict(audio=np.repeat(rows[:, None], 16000, 1),
                label=np.array([u.digit for u in said], np.int32))
  monkeypatch.setattr(espeak_digits, 'clips', fake_clips)
  splits = audio_sets.spoken_digits(load_config('spoken_digits', None).data)
  said = espeak_digits.utterances(0)
  rows = lambda source: [int(source[i]['audio'][0]) for i in range(len(source))]
  assert {said[r].split for r in rows(splits.train)} == {'train'}
  assert rows(splits.test) == [i for i, u in enumerate(said) if u.split == 'test']
  assert rows(splits.train) != sorted(rows(splits.train))  # speakers mixed for num_train
  assert splits.info.test_split == 'held-out speakers'
  assert len(splits.train) == audio_sets.known_info(load_config('spoken_digits', None).data)[1]


def test_placing_a_word_is_deterministic_and_light():
  from jaxlab.data import espeak_digits
  word = np.sin(np.arange(8000) / 7).astype(np.float32) * 0.5
  clip = espeak_digits.place(word, np.random.default_rng([0, 3, 5]))
  again = espeak_digits.place(word, np.random.default_rng([0, 3, 5]))
  np.testing.assert_array_equal(clip, again)
  assert clip.shape == (16000,) and clip.dtype == np.float32 and 0 < np.abs(clip).max() <= 1
  placed = [espeak_digits.place(word, np.random.default_rng(i)) for i in range(40)]
  gains = [np.abs(clip).max() for clip in placed]
  assert min(gains) < 0.5 < max(gains)
  ends = [(clip[0] != 0, clip[-1] != 0) for clip in placed]  # noise before / after the word
  assert (True, True) in ends and (True, False) in ends and (False, False) in ends


_NEEDS_ESPEAK = pytest.mark.skipif(not __import__('shutil').which('espeak-ng'),
                                   reason='espeak-ng is not installed (apt-get install espeak-ng)')


@_NEEDS_ESPEAK
def test_espeak_word_becomes_a_one_second_clip():
  from jaxlab.data import espeak_digits
  spoken = espeak_digits.speak(espeak_digits.Utterance(7, 'en-us', 'f1', 150, 50, 'train'))
  clip = espeak_digits.place(spoken, np.random.default_rng(0))
  assert clip.shape == (16000,) and clip.dtype == np.float32
  assert 0.2 * 16000 < np.sum(np.abs(spoken) > 0.01) and np.abs(clip).max() > 0.1


@_NEEDS_ESPEAK
def test_a_missing_variant_is_a_user_error_not_the_default_speaker():
  from jaxlab.data import espeak_digits
  from jaxlab.errors import UserError
  used = set(espeak_digits.TRAIN_VARIANTS + espeak_digits.TEST_VARIANTS) - {''}
  espeak_digits._check_variants(used)  # pylint: disable=protected-access
  with pytest.raises(UserError, match='lacks the voice variant.*nobody'):
    espeak_digits._check_variants({'m1', 'nobody'})  # pylint: disable=protected-access


@pytest.mark.slow  # ~7 s
def test_spoken_digits_smoke_trains(tmp_path):
  from jaxlab.train import loop
  summary = loop.run(load_config('spoken_digits', 'smoke'), str(tmp_path))
  assert summary['status'] == 'finished' and summary['step'] == 12
  losses = [r['train/loss'] for r in read_metrics(tmp_path) if 'train/loss' in r]
  assert len(losses) == 4 and losses[-1] < losses[0]


def test_speech_commands_from_mock_tfds_are_fixed_length_clips():
  import tensorflow_datasets as tfds
  from jaxlab.data import audio_sets
  config = load_config('speech_commands_cnn', None)
  with tfds.testing.mock_data(num_examples=6):
    splits = audio_sets.speech_commands(config.data)
    raw = tfds.data_source('speech_commands', split='train')[2]
    example = splits.train[2]
  assert splits.info.num_classes == 12 and splits.info.sample_rate == 16000
  assert splits.info.class_names[-2:] == ('_silence_', '_unknown_')
  assert example['audio'].shape == (16000,) and example['audio'].dtype == np.float32
  pcm = np.asarray(raw['audio'], np.float32)[:16000] / 32768
  np.testing.assert_allclose(example['audio'][:len(pcm)], pcm)
  assert example['label'] == raw['label'] and example['label'].dtype == np.int32


def test_speech_commands_not_prepared_is_a_user_error(tmp_path):
  from jaxlab.data import audio_sets
  from jaxlab.errors import UserError
  config = load_config('speech_commands_cnn', None, data__data_dir=str(tmp_path))
  with pytest.raises(UserError, match="'speech_commands' is not prepared in ArrayRecord"):
    audio_sets.speech_commands(config.data)


def _write_wav(path, samples, rate, channels=1):
  pcm = (np.clip(samples, -1, 1) * 32767).astype('<i2')
  with wave.open(str(path), 'wb') as writer:
    writer.setnchannels(channels)
    writer.setsampwidth(2)
    writer.setframerate(rate)
    writer.writeframes(np.repeat(pcm, channels).tobytes())


def test_wav_reading_resamples_downmixes_and_fits_length(tmp_path):
  from jaxlab.data import audio_sets
  from jaxlab.tasks import audio_inputs
  info = audio_sets.audio_info('x', ('a', 'b'))
  tone = np.sin(2 * np.pi * 500 * np.arange(12000) / 8000).astype(np.float32) * 0.5  # 1.5 s
  _write_wav(tmp_path / 'stereo_8k.wav', tone, 8000, channels=2)
  _write_wav(tmp_path / 'short_16k.wav', tone[:4000], 16000)
  batch, readable, errors = audio_inputs.read_wavs(
      [tmp_path / 'stereo_8k.wav', tmp_path / 'short_16k.wav'], info)
  assert batch['audio'].shape == (2, 16000) and not errors and len(readable) == 2
  resampled = batch['audio'][0]
  expected = np.sin(2 * np.pi * 500 * np.arange(16000) / 16000) * 0.5  # 500 Hz at 16 kHz
  np.testing.assert_allclose(resampled[200:-200], expected[200:-200], atol=0.01)
  np.testing.assert_allclose(batch['audio'][1][:4000], tone[:4000], atol=1e-4)
  assert not batch['audio'][1][4000:].any()  # padded with silence


@pytest.fixture(scope='module')
def trained_cnn(tmp_path_factory):
  """speech_commands_cnn:smoke (a CNN with BatchNorm on synthetic_speech), trained once."""
  from jaxlab.train import loop
  workdir = tmp_path_factory.mktemp('speech_cnn')
  loop.run(load_config('speech_commands_cnn', 'smoke'), str(workdir))
  return workdir


@pytest.mark.slow
def test_speech_cnn_loss_falls_and_eval_matches_training(trained_cnn):
  from jaxlab.inference import evaluate
  from jaxlab.inference import trained_run as inference
  records = read_metrics(trained_cnn)
  losses = [r['train/loss'] for r in records if 'train/loss' in r]
  assert len(losses) == 4 and losses[-1] < losses[0]
  final = [r for r in records if 'eval/accuracy' in r][-1]
  result = evaluate.evaluate(inference.load(str(trained_cnn), 'latest'))
  assert result['num_examples'] == 64
  assert result['accuracy'] == pytest.approx(final['eval/accuracy'])
  assert result['loss'] == pytest.approx(final['eval/loss'], rel=1e-5)


@pytest.mark.slow
def test_predict_on_wav_equals_predict_on_the_waveform(trained_cnn, tmp_path, capsys):
  from jaxlab.inference import trained_run as inference
  from jaxlab.inference import predict
  from jaxlab.commands import predict as predict_command
  from jaxlab.data import audio_sets
  clips = audio_sets.synthetic_clips(3, 0, 1)
  paths = [tmp_path / f'clip{i}.wav' for i in range(3)]
  for path, clip in zip(paths, clips['audio']):
    _write_wav(path, clip, 16000)
  run = inference.load(str(trained_cnn), 'latest')
  quantised = np.round(np.clip(clips['audio'], -1, 1) * 32767) / 32768  # as 16-bit PCM holds it
  direct = predict.outputs(run, {'audio': quantised.astype(np.float32)})['probabilities']
  assert predict_command.main(str(trained_cnn), [str(p) for p in paths], checkpoint='latest',
                      top_k_count=2, as_json=True) == 0
  records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  assert [r['file'] for r in records] == [str(p) for p in paths]
  for record, probabilities in zip(records, direct):
    best = record['top_k'][0]
    assert best['label'] == int(np.argmax(probabilities))
    assert best['name'] == audio_sets.SYNTHETIC_CLASSES[best['label']]
    assert best['probability'] == pytest.approx(float(probabilities.max()), abs=1e-3)


@pytest.mark.slow
def test_predict_with_a_bad_wav_exits_2_naming_it(trained_cnn, tmp_path):
  good, bad = tmp_path / 'good.wav', tmp_path / 'bad.wav'
  _write_wav(good, np.zeros(16000, np.float32), 16000)
  bad.write_bytes(b'RIFF\x00\x00\x00\x00WAVEnot really')
  result = run_cli('predict', f'--workdir={trained_cnn}', '--checkpoint=latest', good, bad)
  assert result.returncode == 2, result.stderr[-2000:]
  assert 'bad.wav' in result.stderr and 'good.wav:' not in result.stderr
  assert 'ffmpeg' in result.stderr and not result.stdout.strip()


@pytest.mark.slow
def test_speech_gru_trains_streamed_from_mock_speech_commands(tmp_path):
  """speech_gru end to end on TFDS speech_commands (mocked), streamed: loss falls on a
  repeated batch, and the checkpoint predicts a WAV."""
  import tensorflow_datasets as tfds
  from jaxlab.inference import trained_run as inference
  from jaxlab.inference import predict
  from jaxlab.train import loop
  config = load_config('speech_commands_cnn', 'gru,smoke', data__name='speech_commands',
                       data__placement='stream', data__num_workers=0, data__num_train=32,
                       data__num_test=32, optimizer__learning_rate=1e-2)
  with tfds.testing.mock_data(num_examples=32):
    summary = loop.run(config, str(tmp_path / 'run'))
  assert summary['placement'] == 'stream'
  losses = [r['train/loss'] for r in read_metrics(tmp_path / 'run') if 'train/loss' in r]
  assert len(losses) == 4 and losses[-1] < losses[0]  # the same 32 clips every step
  _write_wav(tmp_path / 'word.wav', np.random.default_rng(0).uniform(-0.5, 0.5, 20000), 16000)
  run = inference.load(str(tmp_path / 'run'), 'latest')
  batch, _, _ = run.task.predict_inputs([str(tmp_path / 'word.wav')])
  probabilities = predict.outputs(run, batch)['probabilities']
  assert probabilities.shape == (1, 12) and probabilities.sum() == pytest.approx(1, abs=1e-5)


@pytest.mark.slow
def test_speech_models_on_8_devices_match_one_and_shard_by_the_rules(tmp_path):
  env = dict(os.environ)
  env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') +
                      ' --xla_force_host_platform_device_count=8').strip()
  # One mesh with all three axes (data=2, fsdp=2, tensor=2): the FSDP and the tensor rules
  # apply together, so one sharded run per model checks both against one device.
  request = dict(workdir=str(tmp_path), layouts=['single', 'dp_fsdp_tp'],
                 table_layouts=['dp_fsdp_tp'])
  result = subprocess.run([sys.executable, '-m', 'tests.speech_worker', json.dumps(request)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  models = json.loads(result.stdout.strip().splitlines()[-1])
  for model, found in models.items():
    single = found['losses']['single']
    assert len(single) == 4 and len(set(single)) == 4, model  # the parameters moved
    assert found['losses']['dp_fsdp_tp'] == pytest.approx(single, rel=1e-4), model
  cnn = {path: spec for path, _, spec in models['speech_cnn']['tables']['dp_fsdp_tp']}
  assert cnn['convs/1/kernel'] == "P(None, None, 'fsdp', 'tensor')"  # in: fsdp, out: tensor
  assert cnn['dense/0/kernel'] == "P('fsdp', 'tensor')"
  assert cnn['norms/1/scale'] == "P('tensor',)"
  assert cnn['head/kernel'] == "P('tensor', None)"  # row-parallel after a column-parallel layer
  gru = {path: spec for path, _, spec in models['speech_gru']['tables']['dp_fsdp_tp']}
  assert gru['grus/0/cell/dense_h/kernel'] == "P('fsdp', 'tensor')"
  assert gru['grus/0/cell/dense_i/kernel'] == "P('fsdp', 'tensor')"
  assert gru['subsample/kernel'] == "P(None, 'fsdp', 'tensor')"
