"""Speech recognition end to end on one module-scoped smoke run (spoken_sentences_ctc:smoke,
a few sentences spoken by espeak-ng): train -> eval (WER/CER, the worst examples file) ->
predict (lines, --json with scores) -> serve -> export, and the dry run on an 8-device
data x FSDP x tensor-parallel mesh."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
import requests

from jaxlab.commands import eval as eval_command
from jaxlab.commands import export as export_command
from jaxlab.commands import predict as predict_command
from jaxlab.inference import predict
from jaxlab.inference import trained_run
from jaxlab.train import loop
from tests.conftest import ROOT, load_config, read_metrics, restore_params
from tests import serving

pytestmark = pytest.mark.slow

SENTENCE = 'Beautiful is better than ugly.'


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  folder = tmp_path_factory.mktemp('speech_recognition')
  config = load_config('spoken_sentences_ctc', data__cache_dir=str(folder / 'cache'))
  summary = loop.run(config, str(folder / 'run'))
  return dict(workdir=folder / 'run', summary=summary, folder=folder)


@pytest.fixture(scope='module')
def recordings(trained):
  """The Zen's first line as `espeak-ng -w` writes it (22.05 kHz), and a shorter one."""
  paths = []
  for index, text in enumerate((SENTENCE, 'Readability counts.')):
    path = trained['folder'] / f'said{index}.wav'
    subprocess.run(['espeak-ng', '-w', str(path), text], check=True)
    paths.append(path)
  return paths


def test_training_reports_wer_cer_and_keeps_the_best_by_wer(trained):
  assert trained['summary']['status'] == 'finished'
  evals = [r for r in read_metrics(trained['workdir']) if 'eval/wer' in r]
  assert evals and {'eval/loss', 'eval/wer', 'eval/cer', 'eval/greedy_wer', 'eval/substitutions',
                    'eval/deletions', 'eval/insertions'} <= set(evals[-1])
  assert evals[-1]['eval/cer'] >= 0 and np.isfinite(evals[-1]['eval/loss'])


def test_eval_prints_wer_and_writes_the_worst_examples(trained, capsys):
  result = eval_command.main(str(trained['workdir']), 'latest')
  printed = capsys.readouterr().out
  assert 'wer' in printed and 'cer' in printed and 'substitutions' in printed
  worst = [json.loads(line) for line in open(result['worst_examples'], encoding='utf-8')]
  assert worst and os.path.dirname(result['worst_examples']) == str(trained['workdir'])
  assert {'reference', 'hypothesis', 'word_errors', 'wer', 'cer'} <= set(worst[0])
  errors = [row['word_errors'] for row in worst]
  assert errors == sorted(errors, reverse=True) and worst[0]['reference']


def test_predict_prints_a_transcript_per_wav_and_json_with_scores(trained, recordings, capsys):
  paths = [str(p) for p in recordings]
  assert predict_command.main(str(trained['workdir']), paths, as_json=True) == 0
  records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  assert [r['file'] for r in records] == paths
  assert all(isinstance(r['text'], str) and r['score'] <= 0 for r in records)
  assert predict_command.main(str(trained['workdir']), paths[:1]) == 0
  line = capsys.readouterr().out.strip()
  assert line == f'{paths[0]}: {records[0]["text"] or "(nothing heard)"}'


def test_a_file_longer_than_the_model_hears_is_refused_by_name(trained, tmp_path):
  path = tmp_path / 'long.wav'
  subprocess.run(['espeak-ng', '-s', '80', '-w', str(path), SENTENCE * 2], check=True)
  result = subprocess.run([sys.executable, '-m', 'jaxlab.main', 'predict',
                           f'--workdir={trained["workdir"]}', str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 2 and 'longer than the 4.5 s' in result.stderr


def test_serve_answers_the_transcripts_predict_prints(trained, recordings):
  with serving.serving(f'--workdir={trained["workdir"]}', '--max_batch=2') as url:
    files = [('file', (p.name, p.read_bytes())) for p in recordings]
    answer = requests.post(f'{url}/v1/predict', files=files, timeout=60)
    assert answer.status_code == 200, answer.text
    served = answer.json()['predictions']
    single = requests.post(f'{url}/v1/predict', data=recordings[0].read_bytes(),
                           headers={'Content-Type': 'audio/wav'}, timeout=60)
    bad = requests.post(f'{url}/v1/predict', files=[('file', ('x.wav', b'not a wav'))],
                        timeout=60)
    model = requests.get(f'{url}/v1/model', timeout=10).json()
  assert bad.status_code == 400 and 'Cannot use the WAV file' in bad.json()['error']
  assert model['input_kind'] == 'audio'
  run = trained_run.load(str(trained['workdir']))
  batch, _, _ = run.task.predict_inputs([str(p) for p in recordings])
  expected = run.task.predictions(predict.outputs(run, batch), 1)
  assert [p['file'] for p in served] == [p.name for p in recordings]
  assert [p['text'] for p in served] == [p['text'] for p in expected]
  assert single.json()['predictions'][0]['text'] == expected[0]['text']


def test_the_exported_model_decodes_the_same_tokens(trained, recordings, tmp_path):
  out = tmp_path / 'export'
  export_command.main(str(trained['workdir']), str(out))
  signature = json.loads((out / 'signature.json').read_text())
  assert set(signature['inputs']) == {'audio', 'audio_length'}
  assert {'tokens', 'counts', 'scores'} <= set(signature['outputs'])
  run = trained_run.load(str(trained['workdir']))
  batch, _, _ = run.task.predict_inputs([str(p) for p in recordings])
  spec = importlib.util.spec_from_file_location('load_exported_speech', out / 'load_exported.py')
  loader = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(loader)
  exported = loader.load(str(out))(batch)
  expected = predict.outputs(run, batch)
  np.testing.assert_array_equal(np.asarray(exported['counts']), expected['counts'])
  np.testing.assert_array_equal(np.asarray(exported['tokens']), expected['tokens'])
  np.testing.assert_allclose(np.asarray(exported['scores']), expected['scores'], rtol=1e-4)
  texts = run.task.texts(np.asarray(exported['tokens']), np.asarray(exported['counts']))
  assert texts == [p['text'] for p in run.task.predictions(expected, 1)]


def test_a_run_resumed_from_its_step_3_checkpoint_equals_the_straight_bucketed_run(
    trained, tmp_path, capsys):
  # The smoke run draws its batches from 2 length buckets (experiments/spoken_sentences_ctc.py)
  # and checkpoints at step 3: rerun from there, it must end bitwise where it ended.
  resumed = tmp_path / 'resumed'
  shutil.copytree(trained['workdir'], resumed)
  shutil.rmtree(resumed / 'checkpoints' / '6')
  config = load_config('spoken_sentences_ctc', data__cache_dir=str(trained['folder'] / 'cache'))
  assert loop.run(config, str(resumed))['step'] == 6
  printed = capsys.readouterr().out
  assert 'Resuming from the checkpoint at step 3' in printed
  assert 'Training batches from 2 length buckets' in printed
  straight, _ = restore_params(trained['workdir'], 6)
  again, _ = restore_params(resumed, 6)
  for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(again), strict=True):
    np.testing.assert_array_equal(a, b)


def test_the_ctc_head_over_sentencepiece_pieces_trains_evaluates_and_predicts(
    trained, recordings, tmp_path, capsys):
  workdir = tmp_path / 'pieces'
  config = load_config('spoken_sentences_ctc', data__cache_dir=str(trained['folder'] / 'cache'),
                       data__tokenizer='sentencepiece', data__vocab_size=288, num_steps=3)
  summary = loop.run(config, str(workdir))
  assert summary['status'] == 'finished' and np.isfinite(summary['eval']['loss'])
  run = trained_run.load(str(workdir))
  assert run.task.info.tokenizer['kind'] == 'sentencepiece' and run.task.info.vocab_size == 288
  # Eval decodes the label pieces back to the test sentences (its references).
  result = eval_command.main(str(workdir), 'latest')
  worst = [json.loads(line) for line in open(result['worst_examples'], encoding='utf-8')]
  assert worst and all(re.fullmatch(r"[a-z' ]+", row['reference']) for row in worst)
  pieces = run.task.tokenizer.encode(worst[0]['reference'])
  assert 0 < len(pieces) < len(worst[0]['reference'])  # pieces, not characters
  assert run.task.texts([pieces], [len(pieces)]) == [worst[0]['reference']]
  capsys.readouterr()
  assert predict_command.main(str(workdir), [str(p) for p in recordings], as_json=True) == 0
  records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  assert len(records) == 2 and all(isinstance(r['text'], str) and r['score'] <= 0
                                   for r in records)


DRY_RUN = """
from tests.conftest import load_config
from jaxlab.perf import dry_run
config = load_config('spoken_sentences_ctc', 'smoke', mesh__data=2, mesh__fsdp=2, mesh__tensor=2)
lowered = dry_run.lower(config)
print(dict(lowered.programs.mesh.shape), lowered.task.__class__.__name__)
for path, shape, spec in lowered.programs.layout.param_table:
  print(path, shape, spec)
"""


def test_dry_run_lowers_the_conformer_onto_an_fsdp_and_tensor_parallel_mesh():
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8')
  result = subprocess.run([sys.executable, '-c', DRY_RUN], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.splitlines()
  assert "'data': 2" in lines[0] and "'fsdp': 2" in lines[0] and "'tensor': 2" in lines[0]
  assert 'SpeechRecognition' in lines[0]
  find = lambda prefix: next(line for line in lines if line.startswith(prefix))
  assert "P(None, None, 'fsdp', 'tensor')" in find('subsample/1/kernel')
  assert "P('fsdp', 'tensor'" in find('blocks/0/attention/query/kernel')
  assert "P('fsdp', 'tensor')" in find('blocks/0/conv/expand/kernel')
  assert "P('tensor', 'fsdp')" in find('blocks/0/ffn1/down/kernel')
  # 29 outputs (blank + 28 characters) do not split in two: that axis stays whole.
  assert "P('fsdp', None)" in find('head/kernel')
