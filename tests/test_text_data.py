"""Text data for language models: tokenizers, packing, the cache and the baselines."""

import math
import os

import numpy as np
import pytest

from jaxlab.data import packing, text_cache, text_sources, token_pool, tokenizers, unigram
from jaxlab.errors import UserError

TRICKY_TEXT = ('def f(x):\n    return  x\t+ 1\n\n\n  indented\r\n'
               'non-ASCII: üñí €, 😀 ∑ 日本語  \n')


@pytest.fixture(scope='module')
def sentencepiece_model():
  """One SentencePiece model trained on the embedded training split."""
  return tokenizers.SentencePieceTokenizer.train(text_sources.embedded_split('train'), vocab_size=400)


# Tokenizers ------------------------------------------------------------------------

def test_byte_tokenizer_round_trips_non_ascii_text_with_byt5_ids():
  tokenizer = tokenizers.ByteTokenizer()
  ids = tokenizer.encode('aé')
  np.testing.assert_array_equal(ids, [ord('a') + 3, 0xC3 + 3, 0xA9 + 3])
  assert ids.dtype == np.int32 and tokenizer.vocab_size == 259
  assert tokenizer.decode(tokenizer.encode(TRICKY_TEXT)) == TRICKY_TEXT


def test_byte_tokenizer_decode_drops_special_ids_and_replaces_broken_utf8():
  tokenizer = tokenizers.ByteTokenizer()
  assert tokenizer.decode([ord('h') + 3, tokenizer.eos_id, ord('i') + 3, 0, 0]) == 'hi'
  assert tokenizer.decode([0xC3 + 3]) == '\ufffd'  # half of 'é'


def test_sentencepiece_round_trips_newlines_indentation_and_unseen_characters(
    sentencepiece_model):
  for document in text_sources.embedded_documents()[:20] + [TRICKY_TEXT]:
    assert sentencepiece_model.decode(sentencepiece_model.encode(document)) == document


def test_sentencepiece_reserves_the_byte_tokenizers_special_ids(sentencepiece_model):
  processor = sentencepiece_model._processor  # pylint: disable=protected-access
  assert (processor.pad_id(), processor.eos_id(), processor.unk_id()) == (0, 1, 2)
  assert processor.bos_id() == -1
  assert sentencepiece_model.vocab_size == 400
  assert sentencepiece_model.encode(TRICKY_TEXT).min() >= 3


def test_sentencepiece_training_is_deterministic(sentencepiece_model):
  again = tokenizers.SentencePieceTokenizer.train(text_sources.embedded_split('train'), vocab_size=400)
  assert again.model_proto == sentencepiece_model.model_proto


def test_sentencepiece_learns_from_the_first_max_training_documents_only(monkeypatch,
                                                                         sentencepiece_model):
  documents = list(text_sources.embedded_split('train'))
  monkeypatch.setattr(tokenizers, 'MAX_TRAINING_DOCUMENTS', len(documents))

  def corpus_then_fail():
    yield from documents
    raise AssertionError('read past MAX_TRAINING_DOCUMENTS')

  limited = tokenizers.SentencePieceTokenizer.train(corpus_then_fail(), vocab_size=400)
  assert limited.model_proto == sentencepiece_model.model_proto


def test_sentencepiece_refuses_a_vocab_too_small_for_its_byte_fallback():
  with pytest.raises(UserError, match='at least 261'):
    tokenizers.SentencePieceTokenizer.train(['abc'], vocab_size=100)


def test_sentencepiece_vocab_too_large_for_the_corpus_is_a_user_error():
  with pytest.raises(UserError, match=r'of 300 pieces: Vocabulary size too high \(300\)'):
    tokenizers.SentencePieceTokenizer.train(['some text'] * 3, vocab_size=300)


def test_from_spec_rebuilds_the_trained_sentencepiece_model_from_the_workdir(tmp_path):
  spec = {'kind': 'sentencepiece', 'file': 'tokenizer.model', 'vocab_size': 400}
  calls = []
  documents_fn = lambda: calls.append(1) or text_sources.embedded_split('test')
  trained = tokenizers.train_or_load(spec, str(tmp_path), documents_fn)
  assert (tmp_path / 'tokenizer.model').exists()
  rebuilt = tokenizers.from_spec(spec, str(tmp_path))
  assert rebuilt.model_proto == trained.model_proto
  np.testing.assert_array_equal(rebuilt.encode(TRICKY_TEXT), trained.encode(TRICKY_TEXT))
  tokenizers.train_or_load(spec, str(tmp_path), documents_fn)
  assert len(calls) == 1  # the second start loads, not retrains


def test_from_spec_without_the_model_file_tells_the_user(tmp_path):
  with pytest.raises(UserError, match='tokenizer.model does not exist'):
    tokenizers.from_spec({'kind': 'sentencepiece', 'file': 'tokenizer.model'}, str(tmp_path))


def test_from_spec_with_a_different_vocab_size_than_the_model_says_so(tmp_path,
                                                                     sentencepiece_model):
  sentencepiece_model.save(str(tmp_path / 'tok.model'))
  with pytest.raises(UserError, match='vocab_size 512.*has 400'):
    tokenizers.from_spec({'kind': 'sentencepiece', 'file': 'tok.model', 'vocab_size': 512},
                         str(tmp_path))


def test_from_spec_names_the_known_kinds_for_an_unknown_one(tmp_path):
  assert isinstance(tokenizers.from_spec({'kind': 'byte'}, str(tmp_path)),
                    tokenizers.ByteTokenizer)
  with pytest.raises(UserError, match='Known kinds: byte, sentencepiece'):
    tokenizers.from_spec({'kind': 'bpe'}, str(tmp_path))


# The embedded corpus ---------------------------------------------------------------

def test_embedded_test_split_is_every_tenth_document_from_the_first_and_covers_the_corpus_once():
  documents = text_sources.embedded_documents()
  train, test = text_sources.embedded_split('train'), text_sources.embedded_split('test')
  assert test == documents[::10]
  assert len(train) + len(test) == len(documents) and not set(train) & set(test)
  assert len(set(documents)) == len(documents)  # no text in both splits
  assert sum(map(len, documents)) > 100_000


# Packing ---------------------------------------------------------------------------

def test_pack_of_documents_of_3_5_and_9_tokens_into_rows_of_4():
  docs = [np.arange(10, 13), np.arange(20, 25), np.arange(30, 39)]
  rows = packing.pack(docs, seq_len=4, eos_id=1)
  np.testing.assert_array_equal(rows['tokens'], [
      [10, 11, 12, 1],
      [20, 21, 22, 23],
      [24, 1, 30, 31],
      [32, 33, 34, 35],
      [36, 37, 38, 1]])
  np.testing.assert_array_equal(rows['segment_ids'], [
      [1, 1, 1, 1],
      [1, 1, 1, 1],
      [1, 1, 2, 2],  # the second document's tail, then the third's start
      [1, 1, 1, 1],
      [1, 1, 1, 1]])
  np.testing.assert_array_equal(rows['positions'], [
      [0, 1, 2, 3],
      [0, 1, 2, 3],
      [0, 1, 0, 1],  # restarts at the row start and at the document start
      [0, 1, 2, 3],
      [0, 1, 2, 3]])
  assert all(array.dtype == np.int32 for array in rows.values())


def test_pack_pads_the_last_row_with_pad_id_and_segment_zero():
  rows = packing.pack([np.array([5, 6]), np.array([7])], seq_len=4, eos_id=1)
  np.testing.assert_array_equal(rows['tokens'], [[5, 6, 1, 7], [1, 0, 0, 0]])
  np.testing.assert_array_equal(rows['segment_ids'], [[1, 1, 1, 2], [1, 0, 0, 0]])
  np.testing.assert_array_equal(rows['positions'], [[0, 1, 2, 0], [0, 0, 0, 0]])


def test_pack_loses_no_token_across_chunks(monkeypatch):
  monkeypatch.setattr(packing, 'PACK_CHUNK_TOKENS', 50)  # many chunk boundaries
  rng = np.random.default_rng(0)
  docs = [rng.integers(3, 259, size=n) for n in rng.integers(0, 40, size=60)]
  rows = packing.pack(docs, seq_len=16, eos_id=1)
  expected = np.concatenate([np.append(doc, 1) for doc in docs])
  np.testing.assert_array_equal(rows['tokens'][rows['segment_ids'] != 0], expected)
  assert (rows['tokens'][rows['segment_ids'] == 0] == 0).all()
  np.testing.assert_array_equal(rows['tokens'].reshape(-1)[:len(expected)], expected)


def test_pack_positions_count_up_within_each_segment():
  rng = np.random.default_rng(1)
  docs = [rng.integers(3, 259, size=n) for n in rng.integers(1, 30, size=40)]
  rows = packing.pack(docs, seq_len=12, eos_id=1)
  for tokens_segments, positions in zip(rows['segment_ids'], rows['positions']):
    for segment in set(tokens_segments) - {0}:
      np.testing.assert_array_equal(positions[tokens_segments == segment],
                                    np.arange((tokens_segments == segment).sum()))


def test_target_mask_excludes_piece_starts_and_padding():
  rows = packing.pack([np.array([5, 6]), np.array([7])], seq_len=4, eos_id=1)
  # targets: 6, eos, [7 starts a document], | [eos starts the row], pad, pad
  np.testing.assert_array_equal(packing.target_mask(rows['segment_ids']),
                                [[True, True, False], [False, False, False]])


# Tokenizing and the cache ----------------------------------------------------------

def test_tokenize_gives_the_same_ids_with_one_or_two_worker_processes(monkeypatch):
  monkeypatch.setattr(token_pool, 'WORKER_CHUNK_CHARS', 50_000)  # several chunks, so a pool runs
  documents = text_sources.embedded_split('train')
  tokenizer = tokenizers.ByteTokenizer()
  one = list(token_pool.tokenize(documents, tokenizer, workers=1))
  two = list(token_pool.tokenize(documents, tokenizer, workers=2))
  assert len(one) == len(two) == len(documents)
  for a, b, document in zip(one, two, documents):
    np.testing.assert_array_equal(a, b)
    assert tokenizer.decode(a) == document


def test_packed_rows_second_call_memory_maps_the_cache_without_tokenizing(tmp_path):
  calls = []
  documents_fn = lambda: calls.append(1) or ['first document', 'second', 'ü third']
  tokenizer = tokenizers.ByteTokenizer()
  first = text_cache.packed_rows(documents_fn, tokenizer, 8, 'toy-train', str(tmp_path))
  second = text_cache.packed_rows(documents_fn, tokenizer, 8, 'toy-train', str(tmp_path))
  assert len(calls) == 1
  expected = packing.pack(map(tokenizer.encode, documents_fn()), 8)
  for key in packing.PACKED_KEYS:
    assert isinstance(second[key], np.memmap)
    np.testing.assert_array_equal(first[key], expected[key])
    np.testing.assert_array_equal(second[key], expected[key])


def test_packed_rows_keys_the_cache_by_seq_len_and_tokenizer_model(tmp_path,
                                                                   sentencepiece_model):
  documents_fn = lambda: ['some words', 'more words']
  byte_rows = text_cache.packed_rows(documents_fn, tokenizers.ByteTokenizer(), 8, 'k', str(tmp_path))
  longer = text_cache.packed_rows(documents_fn, tokenizers.ByteTokenizer(), 16, 'k', str(tmp_path))
  sp_rows = text_cache.packed_rows(documents_fn, sentencepiece_model, 8, 'k', str(tmp_path))
  assert byte_rows['tokens'].shape[1] == 8 and longer['tokens'].shape[1] == 16
  assert not np.array_equal(byte_rows['tokens'][0], sp_rows['tokens'][0])
  assert len(os.listdir(tmp_path)) == 3


def test_packed_rows_ignores_a_cache_write_that_was_interrupted(tmp_path):
  tokenizer = tokenizers.ByteTokenizer()
  name = text_cache._folder_name('toy', tokenizer, 4)  # pylint: disable=protected-access
  staging = tmp_path / f'.tmp-{name}-deadbeef'  # what a kill mid-write leaves
  staging.mkdir()
  np.save(staging / 'tokens.npy', np.full((1, 4), 99, np.int32))
  calls = []
  rows = text_cache.packed_rows(lambda: calls.append(1) or ['ab'], tokenizer, 4, 'toy', str(tmp_path))
  assert len(calls) == 1
  np.testing.assert_array_equal(rows['tokens'], [[ord('a') + 3, ord('b') + 3, 1, 0]])


def test_packed_rows_refuses_a_bucket_as_cache_dir():
  with pytest.raises(UserError, match='must be a local folder'):
    text_cache.packed_rows(lambda: ['a'], tokenizers.ByteTokenizer(), 4, 'k', 'gs://bucket/cache')


# Baselines -------------------------------------------------------------------------

def test_unigram_baseline_matches_a_hand_computation():
  train = packing.pack([np.array([3, 3]), np.array([3, 4])], seq_len=8, eos_id=1)
  test = packing.pack([np.array([4, 3])], seq_len=8, eos_id=1)
  # Counted training targets: 3, eos, 4, eos -> counts (id0..4) 0, 2, 0, 1, 1 of 4.
  # Add-one over 5 ids: p = (1, 3, 1, 2, 2) / 9. Test targets: 3 and eos.
  expected = -(math.log(2 / 9) + math.log(3 / 9)) / 2
  nats, perplexity = unigram.unigram_baseline(train, test, vocab_size=5)
  assert nats == pytest.approx(expected)
  assert perplexity == pytest.approx(math.exp(expected))


def test_unigram_entropy_of_the_rows_own_targets():
  rows = packing.pack([np.array([3, 3]), np.array([3, 4])], seq_len=8, eos_id=1)
  probs = np.array([2, 1, 1]) / 4
  assert unigram.unigram_entropy(rows, 5) == pytest.approx(-(probs * np.log(probs)).sum())


# TFDS ------------------------------------------------------------------------------

def test_tfds_documents_reads_text_through_the_array_record_data_source():
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  with tfds.testing.mock_data(num_examples=7):
    documents = list(text_sources.tfds_documents('lm1b', 'train'))
    records = tfds.data_source('lm1b', split='train', download=False)
    assert documents == [records[i]['text'] for i in range(7)]
    assert text_sources.tfds_cache_key('lm1b', 'train') == 'lm1b/1.1.0-train'
  assert all(isinstance(document, str) and document for document in documents)


def test_records_text_decodes_utf8_bytes():
  records = [{'text': 'é'.encode(), 'label': 1}, {'text': 'plain', 'label': 0}]
  assert list(text_sources.records_text(records)) == ['é', 'plain']


def test_unprepared_tfds_text_set_says_how_to_prepare_it(tmp_path):
  with pytest.raises(UserError) as error:
    list(text_sources.tfds_documents('lm1b', 'train', data_dir=str(tmp_path)))
  message = str(error.value)
  assert 'tfds build lm1b --file_format=array_record --data_dir=DIR' in message
  assert '--config.data.data_dir=DIR' in message
