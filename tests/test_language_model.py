"""The language-model task on packed text: its loss mask, and the offline experiment
end to end (byte-level and SentencePiece)."""

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.data import DatasetInfo, sources, unigram
from jaxlab.tasks import language_model
from tests.conftest import load_config, read_metrics, run_cli


def _task(seq_len=6, vocab=11):
  features = {k: ((seq_len,), 'int32') for k in language_model.FEATURES}
  config = load_config('python_docs_lm')
  return language_model.LanguageModel(config, DatasetInfo('toy', features, vocab_size=vocab))


def test_loss_counts_only_targets_inside_one_document():
  task = _task()
  # One row: document A (3 tokens), document B (2 tokens), one padding token.
  batch = {'tokens': jnp.asarray([[4, 5, 6, 7, 8, 0]]),
           'segment_ids': jnp.asarray([[1, 1, 1, 2, 2, 0]]),
           'positions': jnp.asarray([[0, 1, 2, 0, 1, 0]])}
  logits = jnp.asarray(np.random.default_rng(0).normal(size=(1, 6, 11)), jnp.float32)
  loss, metrics = task.loss(logits, batch)
  log_probs = np.asarray(logits) - np.log(np.exp(np.asarray(logits)).sum(-1, keepdims=True))
  # Targets: 5 after 4, 6 after 5 (A), 8 after 7 (B); not 7 after 6 (a new document)
  # nor the padding.
  expected = -np.mean([log_probs[0, 0, 5], log_probs[0, 1, 6], log_probs[0, 3, 8]])
  assert float(loss) == pytest.approx(expected, rel=1e-5)
  assert float(metrics['perplexity']) == pytest.approx(math.exp(expected), rel=1e-5)
  outputs = task.eval_outputs(logits, batch)
  assert float(outputs['targets'][0]) == 3


def test_masked_examples_do_not_count():
  task = _task()
  batch = {'tokens': jnp.asarray([[4, 5, 6, 7, 8, 9]] * 2),
           'segment_ids': jnp.ones((2, 6), jnp.int32),
           'positions': jnp.tile(jnp.arange(6), (2, 1)), 'mask': jnp.asarray([1.0, 0.0])}
  logits = jnp.asarray(np.random.default_rng(1).normal(size=(2, 6, 11)), jnp.float32)
  masked, _ = task.loss(logits, batch)
  alone, _ = task.loss(logits[:1], {k: v[:1] for k, v in batch.items() if k != 'mask'})
  assert float(masked) == pytest.approx(float(alone), rel=1e-6)


def _unigram_perplexity(config):
  from jaxlab import data as data_lib
  splits = data_lib.load(config.data)
  rows = [sources.read_rows(s, 0, len(s)) for s in (splits.train, splits.test)]
  return unigram.unigram_baseline(*rows, splits.info.vocab_size)[1]


def test_byte_language_model_beats_the_unigram_baseline(tmp_path):
  run_cli('train', '--config=experiments/python_docs_lm.py:smoke', f'--workdir={tmp_path}',
          '--config.progress=False', check=True)
  records = read_metrics(tmp_path)
  losses = [r['train/loss'] for r in records if 'train/loss' in r]
  assert losses[-1] < losses[0]
  final = [r for r in records if 'eval/perplexity' in r][-1]
  baseline = _unigram_perplexity(load_config('python_docs_lm'))
  assert final['eval/perplexity'] < baseline
  assert 0 < final['eval/token_accuracy'] < 1


@pytest.mark.slow  # trains a tokenizer and a model, then evaluates and predicts (15 s)
def test_sentencepiece_tokenizer_is_saved_and_reused_by_eval_and_predict(tmp_path):
  workdir = tmp_path / 'w'
  run_cli('train', '--config=experiments/python_docs_lm.py:smoke', f'--workdir={workdir}',
          '--config.data.tokenizer=sentencepiece', '--config.data.vocab_size=400',
          '--config.progress=False', check=True)
  assert (workdir / 'tokenizer.model').exists()
  info = json.loads((workdir / 'dataset_info.json').read_text())
  assert info['vocab_size'] == 400 and info['tokenizer']['kind'] == 'sentencepiece'
  trained = [r for r in read_metrics(workdir) if 'eval/loss' in r][-1]
  run_cli('eval', f'--workdir={workdir}', check=True)
  saved = json.loads(next(workdir.glob('eval_*.json')).read_text())
  assert saved['loss'] == pytest.approx(trained['eval/loss'], rel=1e-6)
  sample = tmp_path / 'sample.txt'
  sample.write_text('The for statement is used to iterate over the elements of a sequence')
  predicted = run_cli('predict', f'--workdir={workdir}', '--json', '--top_k=2', sample,
                      check=True)
  prediction = json.loads(predicted.stdout.splitlines()[-1])
  assert prediction['perplexity'] > 1 and len(prediction['next_tokens']) == 2


@pytest.mark.slow  # trains a tokenizer and a model on mock lm1b, evaluates, predicts (~12 s)
def test_lm1b_experiment_on_mock_tfds_trains_evaluates_and_predicts(tmp_path, capsys):
  import tensorflow_datasets as tfds
  from jaxlab.commands import eval as eval_command
  from jaxlab.commands import predict as predict_command
  from jaxlab.train import loop
  workdir = str(tmp_path / 'w')
  # Mock lm1b is random letters: a small SentencePiece vocabulary fits it.
  config = load_config('lm1b_lm', data__name='lm1b', data__cache_dir=str(tmp_path / 'cache'),
                       data__vocab_size=300, data__num_test=None, num_steps=60,
                       eval_every_steps=60, checkpoint_every_steps=60)
  with tfds.testing.mock_data(num_examples=200):
    summary = loop.run(config, workdir)
    evaluated = eval_command.main(workdir, 'best')
  assert summary['step'] == 60
  records = read_metrics(workdir)
  losses = [r['train/loss'] for r in records if 'train/loss' in r]
  assert losses[-1] < losses[0] - 1, losses
  info = json.loads((tmp_path / 'w' / 'dataset_info.json').read_text())
  assert info['name'] == 'lm1b' and info['vocab_size'] == 300
  trained = [r for r in records if 'eval/loss' in r][-1]
  assert evaluated['loss'] == pytest.approx(trained['eval/loss'], rel=1e-6)
  sample = tmp_path / 'sample.txt'
  sample.write_text('gebc ahgjefjhfef ehj aijbcidcib')
  capsys.readouterr()
  assert predict_command.main(workdir, [str(sample)], as_json=True, top_k_count=2) == 0
  prediction = json.loads(capsys.readouterr().out.splitlines()[-1])
  assert 1 < prediction['perplexity'] < 300 and len(prediction['next_tokens']) == 2
