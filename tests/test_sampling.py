"""`jaxlab sample`: the KV-cache decoder against the model's full forward, sampling
settings as arrays (no recompiles), streaming text, and the CLI's refusals."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlab.models import modeling
from jaxlab.inference import lm_sampler as sample
from jaxlab.commands import sample as sample_command
from jaxlab.inference import sampling
from jaxlab.data import tokenizers
from jaxlab.errors import UserError
from jaxlab.models import transformer
from tests.conftest import run_cli


@pytest.fixture(scope='module')
def lm_workdir(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('lm_smoke')
  run_cli('train', '--config=experiments/python_docs_lm.py:smoke', f'--workdir={workdir}',
          check=True)
  return workdir


@pytest.fixture(scope='module')
def loaded(lm_workdir):
  return sample.load(lm_workdir, 'latest')


@functools.lru_cache
def _full_apply(model_def):
  return jax.jit(lambda v, t: model_def.apply(v.params, v.model_state, (t,), {},
                                              train=False)[0])


def full_forward_greedy(model_def, variables, prompt_ids, count, max_len):
  """Greedy tokens by recomputing the whole sequence each step (no cache). Rows are
  right-padded to max_len (one compile): causal attention keeps the padding out."""
  ids = list(prompt_ids)
  for _ in range(count):
    row = np.zeros((1, max_len), np.int32)
    row[0, :len(ids)] = ids
    logits = _full_apply(model_def)(variables, jnp.asarray(row))
    ids.append(int(jnp.argmax(logits[0, len(ids) - 1])))
  return ids[len(prompt_ids):]


def greedy(count):
  return sampling.Settings.create(temperature=0.0, max_tokens=count)


@functools.lru_cache
def tiny_gqa_model(scan_layers=True):
  """A directly built model with grouped-query attention and tied embeddings."""
  with nnx.use_eager_sharding(False):
    model = transformer.create((40,), 50, rngs=nnx.Rngs(3), num_layers=2, embed_dim=32,
                               num_heads=4, num_kv_heads=2, tie_embeddings=True,
                               scan_layers=scan_layers)
  graph, params, rest = nnx.split(model, nnx.Param, ...)
  return (modeling.ModelDef(graph, graph, False),
          modeling.Variables(nnx.to_pure_dict(params), nnx.to_pure_dict(rest)))


@pytest.mark.parametrize('length', [1, 7, 16, 17, 40])
def test_cached_greedy_matches_full_forward_on_the_trained_lm(loaded, length):
  run, sampler, tokenizer = loaded
  prompt = tokenizer.encode('The for statement is used to iterate over the elements')[:length]
  count = min(20, sampler.max_len - length)
  # eos stops the cached decoder; compare up to it.
  cached = sampler.sample(run.variables, prompt, greedy(count))
  expected = full_forward_greedy(run.programs.model, run.variables, prompt, count,
                                 sampler.max_len)
  assert cached == expected[:len(cached)]
  assert len(cached) == count or expected[len(cached)] == tokenizers.EOS_ID


@functools.lru_cache
def gqa_sampler(model_def):
  return sampling.Sampler(model_def, max_len=40, chunk=4)  # several chunks per sample


@pytest.mark.parametrize('length,scan_layers', [(3, True), (16, True), (21, True),
                                                (21, False)])
def test_cached_greedy_matches_full_forward_with_gqa_and_tied_embeddings(length, scan_layers):
  model_def, variables = tiny_gqa_model(scan_layers)
  sampler = gqa_sampler(model_def)
  prompt = np.arange(length, dtype=np.int32) % 47 + 3
  count = 40 - length
  cached = sampler.sample(variables, prompt, greedy(count))
  expected = full_forward_greedy(model_def, variables, prompt, count, 40)
  assert cached == expected[:len(cached)]


def test_seeds_top_k_and_no_recompiles(loaded):
  run, sampler, tokenizer = loaded
  prompt = tokenizer.encode('The ')

  def draw(**options):
    return sampler.sample(run.variables, prompt,
                          sampling.Settings.create(max_tokens=30, **options))

  first = draw(temperature=1.0, seed=0)
  assert draw(temperature=1.0, seed=0) == first
  assert draw(temperature=1.0, seed=1) != first
  assert draw(temperature=1.5, top_k=1, seed=5) == draw(temperature=0.0)
  assert draw(temperature=0.7, top_p=1e-6, seed=2) == draw(temperature=0.0)
  compiled = sampler.generate._cache_size(), sampler.prefill._cache_size()
  for temperature, top_k, top_p, seed in [(0.3, 5, 0.9, 7), (2.0, 0, 0.5, 8), (0.0, 3, 1.0, 9)]:
    draw(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
  assert (sampler.generate._cache_size(), sampler.prefill._cache_size()) == compiled
  assert compiled[0] == 1  # one chunk function for every setting and prompt so far


def test_prompt_lengths_compile_prefill_once_per_bucket():
  model_def, variables = tiny_gqa_model()
  sampler = sampling.Sampler(model_def, max_len=40)
  assert sampling.buckets(40) == [16, 32, 40]
  for length in (2, 9, 16, 17, 30):
    sampler.sample(variables, np.full(length, 5, np.int32), greedy(2))
  assert sampler.prefill._cache_size() == 2


def test_text_stream_holds_back_incomplete_utf8():
  tokenizer = tokenizers.ByteTokenizer()
  ids = tokenizer.encode('héllo €!')
  stream = sampling.TextStream(tokenizer.decode)
  pieces = [stream.add([i]) for i in ids] + [stream.finish()]
  assert ''.join(pieces) == 'héllo €!'
  assert '\ufffd' not in ''.join(pieces)
  assert pieces[1:3] == ['', 'é']  # the first byte of é alone prints nothing yet


def test_cli_streams_a_continuation(lm_workdir):
  result = run_cli('sample', f'--workdir={lm_workdir}', '--prompt=The for ', '--max_tokens=20',
                   '--top_k_tokens=10', '--seed=3')
  assert result.returncode == 0, result.stderr
  assert result.stdout.startswith('The for ') and len(result.stdout) > len('The for \n')


def test_cli_stops_at_the_context_and_says_so(lm_workdir):
  """--max_tokens is a most: past the context (the default 200 is, on every shipped LM)
  generation stops there with a note on stderr, and the prompt is kept whole."""
  result = run_cli('sample', f'--workdir={lm_workdir}', '--prompt=The', '--max_tokens=200',
                   '--temperature=0')
  assert result.returncode == 0, result.stderr
  assert result.stdout.startswith('The')
  assert ("stopped after 61 new tokens at the model's context of 64 tokens (its max_len), "
          'before --max_tokens=200') in result.stderr
  assert 'Traceback' not in result.stderr


def test_cli_refuses_a_prompt_that_fills_the_context(lm_workdir):
  result = run_cli('sample', f'--workdir={lm_workdir}', '--prompt=' + 'x' * 64)
  assert result.returncode == 2
  assert 'The prompt (64 tokens) fills the model\'s context of 64 tokens' in result.stderr
  assert 'Traceback' not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_room_left_by_the_prompt_bounds_the_new_tokens(loaded):
  _, sampler, _ = loaded
  assert sample.new_tokens(sampler, 3, 20) == 20
  assert sample.new_tokens(sampler, 3, 200) == 61
  assert sample.new_tokens(sampler, 63, 5) == 1


@pytest.mark.parametrize('options, words', [
    (dict(prompt='x' * 70, max_tokens=1), 'prompt (70 tokens) fills the model\'s context'),
    (dict(prompt='', max_tokens=5), 'prompt is empty'),
    (dict(prompt='The', max_tokens=0), '--max_tokens=0 must be at least 1'),
    (dict(prompt='The', temperature=-1.0), 'must be >= 0'),
    (dict(prompt='The', top_p=0.0), 'in (0, 1]'),
])
def test_bad_requests_raise_user_errors(lm_workdir, options, words):
  with pytest.raises(UserError, match=re.escape(words)):
    sample_command.main(lm_workdir, checkpoint='latest', **options)


def test_cli_refuses_a_workdir_that_is_not_a_language_model(trained_digits):
  result = run_cli('sample', f'--workdir={trained_digits}', '--prompt=hello')
  assert result.returncode == 2
  assert 'needs a language model' in result.stderr and 'Traceback' not in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1
