"""Text classifiers (lstm, gru, transformer_encoder) and their data: padding never changes
a logit, parameter counts and axis names, the python_snippets loader, the shipped
experiments end to end (train -> checkpoint -> eval -> predict on a .txt file), and
FSDP/TP on 8 devices equal to one device."""

import collections
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from jaxlab import config as config_lib
from jaxlab.data import sources, text_sets
from jaxlab.errors import UserError
from jaxlab.models import rnn, text_encoder
from tests.conftest import ROOT, load_config, read_metrics

SEQ_LEN, VOCAB, CLASSES = 12, 40, 5
CASES = {  # registry name -> options
    'lstm': dict(embed_dim=8, hidden_dim=12),
    'gru_bidirectional_both': dict(embed_dim=8, hidden_dim=12, bidirectional=True, pool='both',
                                   num_layers=2),
    'lstm_bidirectional_mean': dict(embed_dim=8, hidden_dim=12, bidirectional=True, pool='mean'),
    'transformer_encoder': dict(embed_dim=16, num_heads=2, mlp_dim=24),
    'transformer_encoder_cls': dict(embed_dim=16, num_heads=2, mlp_dim=24, pool='cls'),
}
# Rows of text (ids >= 3) followed by padding (0); the second row is all text.
ROWS = jnp.array([[5, 6, 7, 8, 9, 0, 0, 0, 0, 0, 0, 0], list(range(10, 22))])


def build(case, seed=0):
  name = case.split('_bidirectional')[0].removesuffix('_cls')
  with nnx.use_eager_sharding(False):  # as models.build: jaxlab places parameters itself
    factory = {'lstm': rnn.create_for('lstm'), 'gru': rnn.create_for('gru'),
               'transformer_encoder': text_encoder.create}[name]
    return factory((SEQ_LEN,), CLASSES, vocab_size=VOCAB, rngs=nnx.Rngs(seed), **CASES[case])


@jax.jit
def _logits(graphdef, state, tokens_BxL):
  return nnx.merge(graphdef, state)(tokens_BxL)


def logits(model, tokens_BxL):
  return _logits(*nnx.split(model), tokens_BxL)


@pytest.mark.parametrize('case', CASES)
def test_appended_padding_changes_no_logit(case):
  model = build(case)
  padded = jnp.concatenate([ROWS, jnp.zeros((2, 7), ROWS.dtype)], axis=1)
  np.testing.assert_allclose(logits(model, padded), logits(model, ROWS), atol=2e-6)
  # ... while a text token does change them (the model reads the text at all).
  changed = ROWS.at[0, 4].set(30)
  assert float(jnp.abs(logits(model, changed)[0] - logits(model, ROWS)[0]).max()) > 1e-4


def _reverse_text(tokens_BxL):
  """Each row's text reversed in place; the padding stays after it."""
  rows = []
  for row in np.asarray(tokens_BxL):
    n = int((row != 0).sum())
    rows.append(np.concatenate([row[:n][::-1], row[n:]]))
  return jnp.asarray(np.stack(rows))


@pytest.mark.parametrize('kind', ['lstm', 'gru'])
def test_bidirectional_reads_backwards_and_unidirectional_does_not(kind):
  options = dict(embed_dim=8, hidden_dim=12, pool='last')
  with nnx.use_eager_sharding(False):
    both = rnn.create_for(kind)((SEQ_LEN,), CLASSES, vocab_size=VOCAB, rngs=nnx.Rngs(0),
                                bidirectional=True, **options)
    forward = rnn.create_for(kind)((SEQ_LEN,), CLASSES, vocab_size=VOCAB, rngs=nnx.Rngs(0),
                                   **options)
  # Swapping the two directions' cells and the halves of the head that read them is the
  # same model applied to each text reversed: the backward pass starts at the last token.
  swapped = nnx.clone(both)
  layer, swapped_layer = both.layers[0], swapped.layers[0]
  nnx.update(swapped_layer.forward_rnn, nnx.state(layer.backward_rnn))
  nnx.update(swapped_layer.backward_rnn, nnx.state(layer.forward_rnn))
  kernel = both.head.kernel[...]
  swapped.head.kernel[...] = jnp.concatenate([kernel[12:], kernel[:12]])
  np.testing.assert_allclose(logits(swapped, _reverse_text(ROWS)), logits(both, ROWS), atol=1e-5)
  # One direction: reversing the text changes the logits.
  assert not np.allclose(logits(forward, _reverse_text(ROWS)), logits(forward, ROWS), atol=1e-4)


def _count(model):
  return sum(leaf.size for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)))


@pytest.mark.parametrize('case', CASES)
def test_parameter_count_matches_the_formula(case):
  options = CASES[case]
  if case.startswith('transformer'):
    expected = text_encoder.num_params(VOCAB, CLASSES, text_encoder.resolve(options))
  else:
    expected = rnn.num_params(case.split('_')[0], VOCAB, CLASSES, options)
  assert _count(build(case)) == expected


def test_rnn_formulas_are_the_textbook_ones():
  # LSTM: 4 gates x (input + recurrent + bias); GRU: 3; two directions double it.
  e, h = 8, 12
  assert rnn.num_params('lstm', VOCAB, CLASSES, dict(embed_dim=e, hidden_dim=h)) == (
      VOCAB * e + 4 * (h * e + h * h + h) + h * CLASSES + CLASSES)
  assert rnn.num_params('gru', VOCAB, CLASSES, dict(embed_dim=e, hidden_dim=h, bidirectional=True,
                                                    pool='both')) == (
      VOCAB * e + 2 * 3 * (h * e + h * h + h) + 4 * h * CLASSES + CLASSES)


@pytest.mark.parametrize('case', ['gru_bidirectional_both', 'transformer_encoder_cls'])
def test_every_parameter_has_logical_axes_the_rules_know(case):
  specs = nnx.to_pure_dict(nnx.get_partition_spec(nnx.state(build(case), nnx.Param)))
  flat = {'/'.join(str(k.key) for k in path): spec for path, spec in
          jax.tree_util.tree_leaves_with_path(specs, is_leaf=lambda s: isinstance(s, P))}
  assert all(spec and all(spec) for spec in flat.values()), flat
  known = {name for name, _ in config_lib.DEFAULT_SHARDING_RULES}
  assert {name for spec in flat.values() for name in spec} <= known
  if case.startswith('gru'):  # gate blocks are column-parallel ('mlp' -> tensor)
    assert flat['layers/0/forward_rnn/cell/dense_h/kernel'] == P('embed', 'mlp')
    assert flat['layers/1/backward_rnn/cell/dense_i/kernel'] == P('embed', 'mlp')


@pytest.mark.parametrize('name, options, problem', [
    ('lstm', dict(pool='max'), "pool='max' must be one of"),
    ('gru', dict(hidden_dim=0), 'hidden_dim=0 must be a positive integer'),
    ('transformer_encoder', dict(embed_dim=30, num_heads=4), 'even head width'),
])
def test_bad_options_are_user_errors(name, options, problem):
  from jaxlab import models
  with pytest.raises(UserError, match=problem):
    models.resolve(name)((SEQ_LEN,), CLASSES, vocab_size=VOCAB, rngs=nnx.Rngs(0), **options)


def test_image_input_is_a_user_error():
  with pytest.raises(UserError, match=r'token sequences of shape \(seq_len,\)'):
    rnn.create_for('lstm')((8, 8, 1), 10, vocab_size=0, rngs=nnx.Rngs(0))


# ------------------------------------------------------------------ python_snippets data

def test_python_snippets_are_fixed_balanced_and_disjoint():
  first, second = text_sets.snippets(), text_sets.snippets()
  assert first == second
  train, test = first['train'], first['test']
  assert not {t for t, _ in train} & {t for t, _ in test}
  assert 0.15 < len(test) / (len(train) + len(test)) < 0.25
  for split in (train, test):
    counts = collections.Counter(label for _, label in split)
    assert set(counts) == set(range(len(text_sets.SNIPPET_PACKAGES)))
    assert min(counts.values()) > 0.75 * max(counts.values()), counts
  # A snippet is lines of its package's source.
  import pathlib
  import sysconfig
  package = pathlib.Path(sysconfig.get_paths()['stdlib'], text_sets.SNIPPET_PACKAGES[0])
  source = ''.join(path.read_text() for path in package.rglob('*.py'))
  assert next(t for t, label in train if label == 0) in source


def test_python_snippets_loader_gives_first_bytes_and_labels():
  config = load_config('python_snippets_text', 'smoke', data__num_train=None, data__num_test=None)
  from jaxlab import data as data_lib
  splits = data_lib.load(config.data)
  train = sources.read_rows(splits.train, 0, len(splits.train))
  text, label = text_sets.snippets()['train'][0]
  seq_len = config.data.seq_len
  expected = np.frombuffer(text.encode()[:seq_len], np.uint8).astype(np.int32) + 3
  np.testing.assert_array_equal(train['tokens'][0, :len(expected)], expected)
  assert train['label'][0] == label and train['tokens'].shape[1] == seq_len
  assert splits.info.class_names == text_sets.SNIPPET_PACKAGES and splits.info.vocab_size == 259


# ------------------------------------------------------------------ end to end

MODELS = ('lstm', 'gru', 'transformer')


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """tests/text_models_worker.py's results: for each model of the offline experiment, its
  smoke run, eval and predict, and the same run under FSDP x TP, on 8 devices."""
  folder = tmp_path_factory.mktemp('text_models')
  text_file = folder / 'snippet.txt'
  text_file.write_text(text_sets.snippets()['test'][0][0])  # the first test snippet
  env = dict(os.environ)
  env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') + ' --xla_force_host_platform_device_count=8')
  result = subprocess.run([sys.executable, '-m', 'tests.text_models_worker',
                           json.dumps(dict(workdir=str(folder), text_file=str(text_file)))],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # the fixture: one 8-device process, 6 small trainings (~70 s CPU for all)
@pytest.mark.parametrize('model', MODELS)
def test_loss_falls_and_eval_of_the_checkpoint_repeats_the_training_eval(runs, model):
  run = runs[model]
  assert len(run['losses']) == 2 and run['losses'][1] < run['losses'][0]  # steps 1-4, 5-8
  assert run['eval'] == pytest.approx(run['train_eval'])


@pytest.mark.slow
@pytest.mark.parametrize('model', MODELS)
def test_predict_reads_a_text_file_as_the_training_text(runs, model):
  run = runs[model]
  assert run['predict_exit'] == 0 and run['same_tokens']
  top_k = run['prediction']['top_k']
  assert {p['name'] for p in top_k} == set(text_sets.SNIPPET_PACKAGES)
  assert sum(p['probability'] for p in top_k) == pytest.approx(1, rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize('model', MODELS)
def test_fsdp_and_tensor_parallel_equal_one_device(runs, model):
  run = runs[model]
  assert len(run['sharded_losses']) == len(run['losses']) == 2
  np.testing.assert_allclose(run['sharded_losses'], run['losses'], rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize('model', MODELS)
def test_parameters_shard_over_fsdp_and_tensor_axes(runs, model):
  specs = runs[model]['table']
  # 259 byte ids do not split in two: the vocabulary axis stays whole; 'embed' goes to fsdp.
  assert specs['embed/embedding'] == "P(None, 'fsdp')"
  if model == 'transformer':
    assert specs['blocks/0/attention/query/kernel'] == "P('fsdp', 'tensor', None)"
    assert specs['blocks/0/mlp/down/kernel'] == "P('tensor', 'fsdp')"
  else:  # gate blocks column-parallel, recurrent kernels too
    cell = 'layers/0/forward_rnn/cell' if model == 'lstm' else 'layers/0/cell'
    for kernel in ('dense_i', 'dense_h'):
      assert specs[f'{cell}/{kernel}/kernel'] == "P('fsdp', 'tensor')"


@pytest.mark.slow
def test_dry_run_prints_the_sharding_table(runs):
  printed = runs['transformer']['dry_run']
  lines = {line.split()[0]: line for line in printed.splitlines() if line.strip()}
  assert "'data': 2, 'fsdp': 2, 'tensor': 2" in lines['mesh:'] and 'parameters:' in printed
  for path, spec in runs['transformer']['table'].items():
    assert lines[path].endswith(spec)


@pytest.mark.slow  # the shipped IMDB experiment on mock TFDS data (~5 s)
def test_imdb_experiment_trains_on_mock_tfds(tmp_path):
  import tensorflow_datasets as tfds
  from jaxlab.train import loop
  config = load_config('imdb_lstm', 'smoke')
  with tfds.testing.mock_data(num_examples=16):
    summary = loop.run(config, str(tmp_path))
  records = read_metrics(tmp_path)
  assert summary['step'] == config.num_steps
  assert np.isfinite([r['train/loss'] for r in records if 'train/loss' in r]).all()
  assert 0 <= records[-1]['eval/accuracy'] <= 1


def test_imdb_dry_run_needs_no_data():
  config = load_config('imdb_lstm', None, data__num_train=1000)
  info, num_train = text_sets.SHAPES['imdb_reviews'](config.data)
  assert num_train == 1000 and info.num_classes == 2
  assert info.vocab_size == config.data.vocab_size == info.tokenizer['vocab_size']
  assert info.spec()['tokens'] == ((config.data.seq_len,), np.int32)
