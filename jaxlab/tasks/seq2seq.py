"""Sequence to sequence (`task.name=seq2seq`): text in, text out (translation, summarization).

A batch holds 'source' (data.seq_len token ids) and 'target' (data.target_len ids: the
target's tokens then end-of-sequence), both 0-padded (`jaxlab.data.text_pairs`). The model
(`transformer_seq2seq`) reads the source and, under teacher forcing, the target shifted
right behind a start token (end-of-sequence, as fairseq starts), and predicts each target
token; padding counts in no loss. Training loss: cross-entropy with task.label_smoothing
(the target spread over the vocabulary, Szegedy et al. 2016), per target token.

Eval and predict decode inside the compiled step (`jaxlab.inference.seq2seq_decoding`:
greedy for decode.beam_size=1, else beam search with decode.length_penalty). Eval metrics:
the loss (nats per target token, without smoothing), token accuracy under teacher forcing,
and on the decoded texts BLEU, chrF (sacrebleu) and ROUGE-1/2/L (rouge-score), against the
references as the data holds them (cut to data.target_len tokens).
"""

import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlab.data import tokenizers
from jaxlab.errors import UserError
from jaxlab.tasks import base, seq2seq_metrics

FEATURES = ('source', 'target')
WORST_EXAMPLES = 50  # examples the eval report shows, lowest sentence chrF first


def shift_right(target_BxT):
  """The decoder's input under teacher forcing: a start token, then the target but its last."""
  start = jnp.full_like(target_BxT[:, :1], tokenizers.EOS_ID)
  return jnp.concatenate([start, target_BxT[:, :-1]], axis=1)


def token_losses(logits_BxTxV, batch, label_smoothing=0.0):
  """(per-token losses [B, T], correct [B, T], weights [B, T]: real target tokens of real
  examples)."""
  logits = logits_BxTxV.astype(jnp.float32)
  target = batch['target']
  weights = (target != tokenizers.PAD_ID).astype(jnp.float32)
  if 'mask' in batch:
    weights = weights * batch['mask'][:, None].astype(jnp.float32)
  if label_smoothing:
    smoothed = optax.smooth_labels(jax.nn.one_hot(target, logits.shape[-1]), label_smoothing)
    losses = optax.softmax_cross_entropy(logits, smoothed)
  else:
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, target)
  correct = (jnp.argmax(logits, -1) == target).astype(jnp.float32)
  return losses, correct, weights


class Seq2Seq(base.Task):
  metric_names = ('loss', 'perplexity', 'token_accuracy') + seq2seq_metrics.NAMES

  def __init__(self, config, info, **kwargs):
    super().__init__(config, info, **kwargs)
    missing = [name for name in FEATURES if name not in info.features]
    if missing or not info.vocab_size:
      raise UserError(f'The seq2seq task needs text pairs ({", ".join(FEATURES)}); {info.name!r} '
                      f'has features {sorted(info.features)}. Use a pair data set (e.g. '
                      '--config.data.name=text_pairs --config.data.path=pairs.tsv, or '
                      'freedict_de_en).')
    spec = info.spec()
    self.source_len, self.target_len = spec['source'][0][0], spec['target'][0][0]
    self.target_vocab = int((info.preprocessing or {}).get('target_vocab_size') or info.vocab_size)
    self.label_smoothing = float(config.task.label_smoothing)
    from jaxlab.inference import seq2seq_decoding  # pylint: disable=g-import-not-at-top
    decode = config.decode
    self.decoding = seq2seq_decoding.Settings(
        max_len=int(decode.max_len or self.target_len), beam_size=int(decode.beam_size),
        length_penalty=float(decode.length_penalty), use_cache=bool(decode.use_cache))

  # --- shapes ---------------------------------------------------------------------------

  def batch_spec(self):
    return {name: self.info.spec()[name] for name in FEATURES}

  def model_signature(self):
    return (self.source_len, self.target_len), self.target_vocab

  # --- compiled -------------------------------------------------------------------------

  def model_inputs(self, batch, key, *, train):
    del key
    target_in = (shift_right(batch['target']),) if 'target' in batch else ()
    return (batch['source'], *target_in), ({} if train else {'decode': self.decoding})

  def loss(self, logits, batch):
    losses, correct, weights = token_losses(logits, batch, self.label_smoothing)
    count = jnp.maximum(weights.sum(), 1.0)
    loss = (losses * weights).sum() / count
    return loss, {'token_accuracy': (correct * weights).sum() / count}

  def eval_outputs(self, outputs, batch):
    losses, correct, weights = token_losses(outputs['logits'], batch)
    return {'loss_sum': (losses * weights).sum(-1), 'correct': (correct * weights).sum(-1),
            'targets': weights.sum(-1), 'tokens': outputs['tokens'],
            'source': batch['source'], 'target': batch['target']}

  def predict_outputs(self, outputs, batch):
    del batch
    return {'tokens': outputs['tokens'], 'scores': outputs['scores'],
            'lengths': outputs['lengths']}

  # --- host -----------------------------------------------------------------------------

  def tokenizers(self):
    """(source tokenizer, target tokenizer) of the run."""
    from jaxlab.tasks import text_inputs  # pylint: disable=g-import-not-at-top
    target_spec = (self.info.preprocessing or {}).get('target_tokenizer') or self.info.tokenizer
    return text_inputs.tokenizer(self), text_inputs.tokenizer_of(target_spec, self.workdir)

  def texts(self, outputs):
    """(sources, hypotheses, references) as text, of eval outputs."""
    source_tokenizer, target_tokenizer = self.tokenizers()
    decode = lambda tokenizer, rows: [tokenizer.decode(row) for row in np.asarray(rows)]
    return (decode(source_tokenizer, outputs['source']), decode(target_tokenizer, outputs['tokens']),
            decode(target_tokenizer, outputs['target']))

  def eval_metrics(self, outputs):
    targets = float(np.sum(outputs['targets']))
    loss = float(np.sum(outputs['loss_sum'])) / max(targets, 1.0)
    _, hypotheses, references = self.texts(outputs)
    return {'loss': loss, 'perplexity': math.exp(min(loss, 700.0)),
            'token_accuracy': float(np.sum(outputs['correct'])) / max(targets, 1.0),
            **seq2seq_metrics.corpus_scores(hypotheses, references),
            'num_targets': int(targets)}

  def eval_line(self, metrics):
    return (f'loss {metrics["loss"]:.4f}, BLEU {metrics["bleu"]:.2f}, chrF {metrics["chrf"]:.2f}, '
            f'ROUGE-L {metrics["rougeL"]:.2f}')

  worst_examples_extension = 'txt'  # `jaxlab eval`'s WORKDIR/eval_<step>_worst.txt

  def write_worst_examples(self, outputs, path):
    from jaxlab import storage  # pylint: disable=g-import-not-at-top
    storage.write_text(path, self.worst_examples(outputs) + '\n')

  def worst_examples(self, outputs, count=WORST_EXAMPLES):
    """A readable report of the `count` test examples of lowest sentence chrF."""
    sources, hypotheses, references = self.texts(outputs)
    scored = sorted((seq2seq_metrics.sentence_chrf(h, r), i)
                    for i, (h, r) in enumerate(zip(hypotheses, references)))
    lines = [f'The {min(count, len(scored))} test examples of lowest sentence chrF '
             f'(sacrebleu), of {len(scored)}; decoded with beam size '
             f'{self.decoding.beam_size}. BLEU signature: {seq2seq_metrics.signature()}', '']
    for score, i in scored[:count]:
      lines += [f'chrF {score:.1f}', f'  source:     {sources[i]!r}',
                f'  reference:  {references[i]!r}', f'  hypothesis: {hypotheses[i]!r}', '']
    return '\n'.join(lines)

  def predict_spec(self):
    return {'source': ((self.source_len,), np.dtype(np.int32))}

  def text_batch(self, texts):
    """The predict batch of source texts (each made as the training sources were, then cut
    to data.seq_len tokens)."""
    from jaxlab.data import python_functions, text_pairs  # pylint: disable=g-import-not-at-top
    source_format = (self.info.preprocessing or {}).get('source_format')
    if source_format:
      texts = [python_functions.SOURCE_FORMATS[source_format](text) for text in texts]
    source_tokenizer, _ = self.tokenizers()
    source = np.zeros((len(texts), self.source_len), np.int32)
    for row, text in enumerate(texts):
      ids, _ = text_pairs.encode_source(source_tokenizer, text, self.source_len)
      source[row, :len(ids)] = ids
    return {'source': source}

  def predict_inputs(self, paths):
    """Each non-empty line of each file (of stdin for '-') is one source text, named
    FILE:LINE; a .py file is one source (code to summarize), named FILE."""
    texts, names, errors = [], [], {}
    for path in paths:
      try:
        lines = _lines(path)
      except (OSError, UnicodeDecodeError) as error:
        errors[path] = str(error)
        continue
      found = [(path if number is None else f'{path}:{number}', line) for number, line in lines
               if line.strip()]
      if not found:
        errors[path] = 'it holds no text'
      names += [name for name, _ in found]
      texts += [line for _, line in found]
    return self.text_batch(texts), names, errors

  def predictions(self, outputs, top_k):
    del top_k  # one output per input
    _, target_tokenizer = self.tokenizers()
    return [dict(text=target_tokenizer.decode(tokens), score=round(float(score), 4),
                 tokens=int(length))
            for tokens, score, length in zip(outputs['tokens'], outputs['scores'],
                                             outputs['lengths'])]

  def prediction_line(self, prediction):
    return prediction['text']


def _lines(path):
  """[(line number, line)] of a text file, or of stdin for '-'; [(None, code)] of a .py file."""
  if path == '-':
    return list(enumerate(sys.stdin.read().splitlines(), 1))
  with open(path, encoding='utf-8') as f:
    text = f.read()
  return [(None, text)] if path.endswith('.py') else list(enumerate(text.splitlines(), 1))
