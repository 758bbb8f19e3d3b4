"""Sequence to sequence end to end: the offline experiments' smoke runs, then eval (BLEU,
chrF, ROUGE and the worst examples), predict (files, stdin, --json), serve and export
round trips on the FreeDict run; the TFDS recipes on mock data, streamed; --dry_run on the
8-device FSDP x TP mesh; and the exit-2 of a missing FreeDict package."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import requests

from jaxlab.commands import eval as eval_command
from jaxlab.commands import export as export_command
from jaxlab.commands import predict as predict_command
from jaxlab.inference import predict
from jaxlab.inference import trained_run
from jaxlab.train import loop
from tests.conftest import ROOT, load_config, read_metrics, run_cli
from tests import serving

pytestmark = pytest.mark.slow

WORDS = ['Wörterbuch', 'guten Morgen', 'Hund']


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
  return tmp_path_factory.mktemp('seq2seq')


@pytest.fixture(scope='module')
def freedict(folder):
  """The workdir of freedict_de_en's smoke run (the pairs parsed into a fresh cache)."""
  workdir = folder / 'freedict'
  loop.run(load_config('freedict_de_en', data__cache_dir=str(folder / 'cache'), plots=False),
           str(workdir))
  return workdir


def test_freedict_smoke_trains_and_evaluates_with_the_fields_metrics(freedict):
  evaluated = [r for r in read_metrics(freedict) if 'eval/chrf' in r][-1]
  assert {'eval/bleu', 'eval/rouge1', 'eval/rouge2', 'eval/rougeL', 'eval/loss'} <= set(evaluated)
  assert 0 <= evaluated['eval/chrf'] <= 100 and np.isfinite(evaluated['eval/loss'])
  info = json.loads((freedict / 'dataset_info.json').read_text())
  assert info['features'] == {'source': [[24], 'int32'], 'target': [[16], 'int32']}
  assert info['test_split'] == 'held-out headwords'


def test_eval_prints_the_metrics_and_writes_the_worst_examples(freedict, capsys):
  result = eval_command.main(str(freedict), 'latest')
  shown = capsys.readouterr().out
  for name in ('bleu', 'chrf', 'rouge1', 'rougeL'):
    assert name in shown and name in result
  worst = (freedict / f'eval_{result["step"]}_worst.txt').read_text()
  assert 'tok:13a' in worst  # sacrebleu's signature
  assert worst.count('  reference:  ') == 16 and worst.count('  hypothesis: ') == 16


def test_predict_translates_lines_of_files_and_stdin_with_json_scores(freedict, folder, capsys):
  lines = folder / 'words.txt'
  lines.write_text('\n'.join(WORDS) + '\n\n', encoding='utf-8')
  capsys.readouterr()
  assert predict_command.main(str(freedict), [str(lines)], as_json=True) == 0
  found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  assert [f['file'] for f in found] == [f'{lines}:{i}' for i in (1, 2, 3)]
  assert all(isinstance(f['text'], str) and f['score'] <= 0 for f in found)
  piped = subprocess.run([sys.executable, '-m', 'jaxlab.main', 'predict', f'--workdir={freedict}',
                          '-'], input='Hund\n', capture_output=True, text=True, cwd=ROOT,
                         timeout=300, check=True)
  assert piped.stdout.strip() == f'-:1: {found[2]["text"]}'


def test_serve_answers_the_translations_predict_gives(freedict):
  with serving.serving(f'--workdir={freedict}', '--max_batch=2') as url:
    answer = requests.post(f'{url}/v1/predict', json={'texts': WORDS}, timeout=120)
    assert answer.status_code == 200, answer.text
    served = answer.json()['predictions']
  run = trained_run.load(str(freedict))
  expected = run.task.predictions(predict.outputs(run, run.task.text_batch(WORDS)), 1)
  assert [s['text'] for s in served] == [e['text'] for e in expected]


def test_the_exported_model_decodes_the_same_tokens(freedict, folder):
  out = folder / 'export'
  export_command.main(str(freedict), str(out))
  signature = json.loads((out / 'signature.json').read_text())
  assert set(signature['inputs']) == {'source'}
  assert {'tokens', 'scores', 'lengths'} <= set(signature['outputs'])
  run = trained_run.load(str(freedict))
  batch = run.task.text_batch(WORDS)
  spec = importlib.util.spec_from_file_location('load_exported_seq2seq', out / 'load_exported.py')
  loader = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(loader)
  exported = loader.load(str(out))(batch)
  expected = predict.outputs(run, batch)
  np.testing.assert_array_equal(np.asarray(exported['tokens']), expected['tokens'])
  np.testing.assert_allclose(np.asarray(exported['scores']), expected['scores'], rtol=1e-4)


def test_stdlib_summaries_smoke_trains_a_sentencepiece_model_and_scores_rouge(folder):
  workdir = folder / 'stdlib'
  summary = loop.run(load_config('stdlib_summaries', data__cache_dir=str(folder / 'cache'),
                                 plots=False), str(workdir))
  assert summary['step'] == 8
  assert (workdir / 'tokenizer.model').is_file()
  evaluated = [r for r in read_metrics(workdir) if 'eval/rougeL' in r][-1]
  assert 0 <= evaluated['eval/rougeL'] <= 100
  run = trained_run.load(str(workdir))  # predict reads a function as the training pairs were made
  assert run.task.info.preprocessing['source_format'] == 'python_function'
  code = 'def area(width, height):\n    """Area."""\n    return width * height\n'
  tokenizer, _ = run.task.tokenizers()
  np.testing.assert_array_equal(
      run.task.text_batch([code])['source'][0][:8],
      tokenizer.encode('area\ndef area(width, height): return width * height')[:8])


def test_the_wmt14_recipe_streams_mock_tfds_data_through_training_and_eval(folder):
  import tensorflow_datasets as tfds
  config = load_config('wmt14_de_en', data__num_workers=0, plots=False)
  assert config.data.placement == 'stream'
  with tfds.testing.mock_data(num_examples=64):
    summary = loop.run(config, str(folder / 'wmt14'))
  assert summary['step'] == 4
  assert [r for r in read_metrics(folder / 'wmt14') if 'eval/bleu' in r]


def test_the_cnn_dailymail_recipe_validates_and_knows_its_shapes_without_data():
  from jaxlab import config as config_lib
  from jaxlab.data import registry
  config = load_config('cnn_dailymail', None)
  config_lib.validate(config)
  info, count = registry.known_info(config.data)
  assert info.features == {'source': ((512,), 'int32'), 'target': ((128,), 'int32')}
  assert count == 287_113 and info.vocab_size == 32000


def test_a_missing_freedict_package_exits_2_with_the_install_line(folder):
  result = run_cli('train', '--config=experiments/freedict_de_en.py:smoke',
                   f'--config.data.path={folder / "no_dictionary"}', f'--workdir={folder / "x"}')
  assert result.returncode == 2
  assert 'apt-get install -y dict-freedict-deu-eng' in result.stderr


# Lowered as --dry_run lowers it, short of XLA's compile, on 8 CPU devices.
DRY_RUN = """
from tests.conftest import load_config
from jaxlab.perf import dry_run
config = load_config('wmt14_de_en', None, mesh__data=1, mesh__fsdp=2, mesh__tensor=4)
lowered = dry_run.lower(config)
print(dict(lowered.programs.mesh.shape), lowered.task.__class__.__name__)
for path, shape, spec in lowered.programs.layout.param_table:
  print(path, shape, spec)
"""


def test_dry_run_lowers_the_transformer_base_onto_an_fsdp_and_tensor_parallel_mesh():
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8')
  result = subprocess.run([sys.executable, '-c', DRY_RUN], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.splitlines()
  assert "'fsdp': 2" in lines[0] and "'tensor': 4" in lines[0] and 'Seq2Seq' in lines[0]
  table = dict(line.split(' ', 1) for line in lines[1:])
  assert "P('fsdp', 'tensor'" in table['decoder/0/cross_attention/query/kernel']
  assert "P('tensor', 'fsdp')" in table['target_embed/embedding']
  assert "'tensor'" in table['encoder/5/mlp/gate/kernel']
