"""Sequence to sequence, without training: cached decoding against full recomputation,
beam size 1 against greedy, padding against the loss, the metrics against sacrebleu and
rouge-score called directly, pair files with bad rows, and the offline sets' parsers."""

import functools
import gzip

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlab.data import pair_sets, python_functions, text_pairs, tokenizers
from jaxlab.errors import UserError
from jaxlab.inference import seq2seq_decoding
from jaxlab.models import transformer_seq2seq
from jaxlab.tasks import seq2seq, seq2seq_metrics


@functools.lru_cache
def tiny_model():
  """Grouped-query attention, separate vocabularies (30 source, 40 target), untied head."""
  with nnx.use_eager_sharding(False):
    model = transformer_seq2seq.create((12, 10), 40, rngs=nnx.Rngs(0), vocab_size=30,
                                       num_layers=2, embed_dim=32, num_heads=4, num_kv_heads=2,
                                       tie_embeddings=False)
  model.eval()
  return model


def sources():
  rows = np.random.RandomState(0).randint(3, 30, (3, 12)).astype(np.int32)
  rows[1, 7:] = 0  # a shorter source, padded
  return jnp.asarray(rows)


@functools.lru_cache
def teacher_forced():
  """The model's logits of (source, target_in), compiled (eager runs op by op: slow)."""
  model = tiny_model()
  return jax.jit(lambda source, target_in: model(source, target_in))


@functools.lru_cache
def decoded(beam_size, use_cache, max_len=9):
  settings = seq2seq_decoding.Settings(max_len=max_len, beam_size=beam_size, use_cache=use_cache)
  model = tiny_model()
  return jax.device_get(jax.jit(lambda s: seq2seq_decoding.decode(model, s, settings))(sources()))


@pytest.mark.parametrize('beam_size', [1, 3])
def test_cached_decoding_equals_full_recomputation_token_for_token(beam_size):
  cached, recomputed = decoded(beam_size, True), decoded(beam_size, False)
  np.testing.assert_array_equal(cached['tokens'], recomputed['tokens'])
  np.testing.assert_array_equal(cached['lengths'], recomputed['lengths'])
  np.testing.assert_allclose(cached['scores'], recomputed['scores'], rtol=1e-5)


def test_greedy_tokens_are_the_argmax_of_the_teacher_forced_logits():
  """Each greedy token is what the full model, fed the tokens before it, ranks first."""
  out = decoded(1, True)
  tokens = np.asarray(out['tokens'])
  target_in = np.concatenate([np.full((3, 1), tokenizers.EOS_ID), tokens[:, :-1]], 1)
  logits = teacher_forced()(sources(), jnp.asarray(target_in))
  for row in range(3):
    length = out['lengths'][row]
    np.testing.assert_array_equal(np.argmax(logits[row, :length], -1), tokens[row, :length])


def test_beam_size_1_is_greedy_and_a_wider_beam_scores_at_least_as_well():
  greedy = decoded(1, True)
  model = tiny_model()

  def beam_search(beam_size):
    settings = seq2seq_decoding.Settings(max_len=9, beam_size=beam_size, length_penalty=0.0)
    return jax.jit(lambda s: seq2seq_decoding.beam_search(model, s, model.encode(s), settings))(
        sources())

  one_beam = beam_search(1)
  np.testing.assert_array_equal(one_beam['tokens'], greedy['tokens'])
  np.testing.assert_allclose(one_beam['scores'], greedy['scores'], rtol=1e-5)
  wide = beam_search(4)
  assert np.all(np.asarray(wide['scores']) >= np.asarray(greedy['scores']) - 1e-5)


def _task(label_smoothing=0.0):
  class Config:  # the fields Seq2Seq reads
    class task:  # pylint: disable=invalid-name
      pass

    class decode:  # pylint: disable=invalid-name
      max_len, beam_size, length_penalty, use_cache = 0, 1, 0.6, True
  Config.task.label_smoothing = label_smoothing
  info = text_pairs.pair_info('pairs', 12, 10, ({'kind': 'byte'}, 30), ({'kind': 'byte'}, 40))
  return seq2seq.Seq2Seq(Config, info)


def _example_losses(task, source, target):
  (source, target_in), _ = task.model_inputs({'source': source, 'target': target}, None,
                                             train=True)
  logits = teacher_forced()(source, target_in)
  losses, _, weights = seq2seq.token_losses(logits, {'source': source, 'target': target},
                                            task.label_smoothing)
  return (losses * weights).sum(-1) / weights.sum(-1)


@pytest.mark.parametrize('label_smoothing', [0.0, 0.1])
def test_padding_changes_no_loss(label_smoothing):
  """A pair's loss alone at its own length, padded further, or beside a longer pair."""
  task = _task(label_smoothing)
  source = np.asarray([[5, 9, 11, 4, 0, 0, 0, 0], [7, 8, 9, 10, 11, 12, 13, 14]], np.int32)
  target = np.asarray([[6, 3, 1, 0, 0], [4, 5, 6, 7, 1]], np.int32)
  together = _example_losses(task, jnp.asarray(source), jnp.asarray(target))
  alone = _example_losses(task, jnp.asarray(source[:1, :4]), jnp.asarray(target[:1, :3]))
  padded = _example_losses(task, jnp.pad(source[:1], ((0, 0), (0, 8))),
                           jnp.pad(target[:1], ((0, 0), (0, 6))))
  np.testing.assert_allclose(together[0], alone[0], rtol=1e-5)
  np.testing.assert_allclose(padded[0], alone[0], rtol=1e-5)


def test_masked_examples_and_label_smoothing_in_the_loss():
  task, smoothed = _task(), _task(0.1)
  logits = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 40))
  batch = {'target': jnp.asarray([[5, 1, 0], [6, 7, 1]]), 'mask': jnp.asarray([1.0, 0.0])}
  loss, _ = task.loss(logits, batch)
  log_probs = jax.nn.log_softmax(logits)
  np.testing.assert_allclose(loss, -(log_probs[0, 0, 5] + log_probs[0, 1, 1]) / 2, rtol=1e-5)
  with_smoothing, _ = smoothed.loss(logits, batch)
  expected = -sum(0.9 * log_probs[0, t, k] + 0.1 * log_probs[0, t].mean()
                  for t, k in ((0, 5), (1, 1))) / 2
  np.testing.assert_allclose(with_smoothing, expected, rtol=1e-5)


HYPOTHESES = ['the cat sat on the mat', 'a dog barked loudly at night', 'items of luggage',
              'Return the size of the terminal.', '']
REFERENCES = ['the cat is sitting on the mat', 'the dog barked at night', 'pieces of luggage',
              'Get the size of the terminal window.', 'erbium']


def test_metrics_equal_sacrebleu_and_rouge_score_called_directly():
  import sacrebleu
  from rouge_score import rouge_scorer
  scores = seq2seq_metrics.corpus_scores(HYPOTHESES, REFERENCES)
  assert scores['bleu'] == pytest.approx(sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score)
  assert scores['chrf'] == pytest.approx(sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES]).score)
  scorer = rouge_scorer.RougeScorer(['rouge1', 'rouge2', 'rougeL'], use_stemmer=True)
  each = [scorer.score(r, h) for h, r in zip(HYPOTHESES, REFERENCES)]
  for name in ('rouge1', 'rouge2', 'rougeL'):
    assert scores[name] == pytest.approx(100 * np.mean([s[name].fmeasure for s in each]))
  assert 0 < scores['bleu'] < 100 and 0 < scores['rougeL'] < 100
  assert 'tok:13a' in seq2seq_metrics.signature()


def _write(path, text):
  path.write_text(text, encoding='utf-8')
  return str(path)


def test_pair_files_with_bad_rows_are_skipped_and_counted(tmp_path, capsys):
  tsv = _write(tmp_path / 'p.tsv', 'source\ttarget\nHund\tdog\n\tempty source\nKatze\n'
               'Maus\tmouse\nBaum\t  \n')
  assert text_pairs.read_pairs(tsv) == [('Hund', 'dog'), ('Maus', 'mouse')]
  warning = capsys.readouterr().err
  assert 'skipped 3 bad row(s)' in warning and 'line 3: empty source' in warning
  jsonl = _write(tmp_path / 'p.jsonl', '{"source": "Hund", "target": "dog"}\nnot json\n'
                 '{"source": "Katze"}\n{"source": "Maus", "target": ""}\n')
  assert text_pairs.read_pairs(jsonl) == [('Hund', 'dog')]
  assert 'skipped 3 bad row(s)' in capsys.readouterr().err


def test_a_bad_row_stops_the_run_with_its_line_number_when_not_skipping(tmp_path):
  tsv = _write(tmp_path / 'p.tsv', 'Hund\tdog\nKatze\tcat\tchat\n')
  with pytest.raises(UserError, match=r'p.tsv line 2: 3 tab-separated column\(s\)') as raised:
    text_pairs.read_pairs(tsv, skip_bad=False)
  assert 'skip_bad_records=True' in str(raised.value)


def test_pairs_are_tokenized_with_end_of_sequence_and_cut_to_length():
  byte = tokenizers.ByteTokenizer()
  arrays, cut = text_pairs.encode_pairs([('ab', 'xyz'), ('abcdef', 'uvwxyz')], byte, byte, 4, 4)
  np.testing.assert_array_equal(arrays['source'][0], [ord('a') + 3, ord('b') + 3, 0, 0])
  np.testing.assert_array_equal(arrays['target'][0], [ord('x') + 3, ord('y') + 3, ord('z') + 3,
                                                      tokenizers.EOS_ID])
  np.testing.assert_array_equal(arrays['target'][1][-1], tokenizers.EOS_ID)
  assert cut == 1


def test_dictd_numbers_and_freedict_entries_parse(tmp_path):
  assert pair_sets.dictd_number('B0') == 64 + 52
  assert pair_sets.dictd_number('A') == 0 and pair_sets.dictd_number('/') == 63
  assert pair_sets.first_sense('Abblocken /ˈapblˌɔkən/ <neut, n, sg>\n [soc.] defensiveness '
                               '<n>\n   Synonym: {Abwehrhaltung}\n') == ('Abblocken', 'defensiveness')
  assert pair_sets.first_sense('anders ausstatten /x/ <v, trans>\nreconfigure <v> [Br.] , '
                               'reconfigurate <v> [Am.]\n') == ('anders ausstatten', 'reconfigure')
  entries = ['Hund /hʊnt/ <masc, n, sg>\ndog, hound\n', 'Katze /ˈkatsə/\ncat\n']
  data = ''.join(entries).encode()
  digits = pair_sets._DICTD_DIGITS  # pylint: disable=protected-access
  (tmp_path / 'freedict-deu-eng.index').write_text(
      f'00databaseurl\tA\tB\nhund\tA\t{digits[len(entries[0].encode())]}\n'
      f'katze\t{digits[len(entries[0].encode())]}\t{digits[len(entries[1].encode())]}\n')
  with gzip.open(tmp_path / 'freedict-deu-eng.dict.dz', 'wb') as f:
    f.write(data)
  pairs = pair_sets.freedict_pairs(str(tmp_path))
  assert sorted(pairs['train'] + pairs['test']) == [('Hund', 'dog'), ('Katze', 'cat')]


def test_a_missing_freedict_package_names_the_install_line(tmp_path):
  with pytest.raises(UserError, match='apt-get install -y dict-freedict-deu-eng'):
    pair_sets.freedict_pairs(str(tmp_path))


def test_stdlib_functions_pair_code_without_its_docstring_with_its_first_sentence(tmp_path):
  source = tmp_path / 'mod.py'
  source.write_text('def area(width, height):\n    """Return the area of a rectangle. Both\n'
                    '    sides in metres."""\n    return width * height\n\n'
                    'def bare():\n    """x"""\n    return 1\n')
  found = pair_sets.module_functions(str(source), 'mod')
  assert found == [('mod', 'area\ndef area(width, height): return width * height',
                    'Return the area of a rectangle.')]
  pairs = pair_sets.stdlib_pairs()
  assert len(pairs['train']) > 3000 and len(pairs['test']) > 200
  assert not {code for code, _ in pairs['train']} & {code for code, _ in pairs['test']}


def test_a_function_source_starts_with_its_names_words_and_predict_makes_it_the_same_way():
  assert python_functions.name_words('get_address_list') == 'get address list'
  assert python_functions.name_words('isTypeTk') == 'is type tk'
  assert python_functions.name_words('HTTPResponse') == 'http response'
  method = ('    @property\n    def _tk_type(self, x):\n        """The type. More."""\n'
            '        if x:\n            return   1\n')
  assert python_functions.function_source(method) == ('tk type\n@property def _tk_type(self, x): '
                                               'if x: return 1')
  assert python_functions.function_source('not (python') == 'not (python'


def test_separate_vocabularies_train_a_target_tokenizer_of_their_own(tmp_path):
  from tests.conftest import load_config
  words = ['Haus', 'Baum', 'Wasser', 'Sonne', 'Mond', 'Stern', 'Feuer', 'Erde', 'Himmel', 'Wald']
  english = ['house', 'tree', 'water', 'sun', 'moon', 'star', 'fire', 'earth', 'sky', 'forest']
  rng = np.random.default_rng(0)
  pairs = []
  for _ in range(300):
    picked = rng.choice(len(words), 3)
    pairs.append((' '.join(words[i] for i in picked), ' '.join(english[i] for i in picked)))
  config = load_config('stdlib_summaries', data__shared_vocab=False, data__vocab_size=280)
  splits = text_pairs.pair_splits(config.data, str(tmp_path), 'pairs',
                                  {'train': pairs[:250], 'test': pairs[250:]})
  target_spec = splits.info.preprocessing['target_tokenizer']
  assert target_spec['file'] == text_pairs.TARGET_TOKENIZER != splits.info.tokenizer['file']
  source_model = tokenizers.from_spec(splits.info.tokenizer, str(tmp_path))
  target_model = tokenizers.from_spec(target_spec, str(tmp_path))
  assert source_model.fingerprint != target_model.fingerprint
  row = splits.test[0]
  assert target_model.decode(row['target']) == pairs[250][1]
  assert source_model.decode(row['source']) == pairs[250][0]


def test_predict_reads_a_line_per_source_and_a_python_file_whole(tmp_path):
  lines = tmp_path / 'words.txt'
  lines.write_text('Hund\n\nKatze\n', encoding='utf-8')
  code = tmp_path / 'f.py'
  code.write_text('def f(x):\n    return x\n', encoding='utf-8')
  assert seq2seq._lines(str(lines)) == [(1, 'Hund'), (2, ''), (3, 'Katze')]  # pylint: disable=protected-access
  assert seq2seq._lines(str(code)) == [(None, 'def f(x):\n    return x\n')]  # pylint: disable=protected-access
