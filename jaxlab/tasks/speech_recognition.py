"""Speech recognition (`task.name=speech_recognition`): a waveform -> its transcript, with CTC.

A batch holds 'audio' (float32 [num_samples] at 16 kHz, zero after the utterance),
'audio_length' (its samples), 'labels' (int32 token ids of the normalised transcript,
0 after them: jaxlab.data.transcripts) and 'label_length'. The model (e.g. `speech_ctc`)
takes (audio, audio_length) and gives per-frame logits over the blank (id 0) and the
tokens, 4x fewer frames than the log-mel; the task knows how many are valid from the
lengths (jaxlab.models.speech_ctc.output_lengths, by model.hop_length).

Loss: CTC (`optax.ctc_loss`, which takes paddings: 1.0 for a padded frame or label),
summed over the batch's utterances and divided by their label tokens, so padding (of
the audio or of the label row) changes no loss. Decoding, compiled into the eval and
predict steps: greedy, or prefix beam search when decode.beam_size > 1
(jaxlab.tasks.ctc_decoding). Metrics, on the host: WER and CER by jiwer over the
normalised texts, with the word substitution, deletion and insertion counts; with beam
search also greedy_wer and greedy_cer beside them. `jaxlab eval` also writes the
worst-recognised test utterances to WORKDIR/eval_<step>_worst.jsonl.

Predictions: the transcript of each WAV file and its score (the log-probability of the
decoded prefix; of its best path with greedy decoding).
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlab.errors import UserError
from jaxlab.models import speech_ctc
from jaxlab.tasks import base, ctc_decoding

FEATURES = ('audio', 'audio_length', 'labels', 'label_length')
WORST_EXAMPLES = 50  # written by `jaxlab eval`, worst first


class SpeechRecognition(base.Task):
  metric_names = ('loss', 'wer', 'cer', 'greedy_wer', 'greedy_cer')
  input_kind = 'audio'  # what `jaxlab serve` reads from uploaded files

  def __init__(self, config, info, **kwargs):
    super().__init__(config, info, **kwargs)
    missing = [name for name in FEATURES if name not in info.features]
    if missing or not info.vocab_size:
      raise UserError(f'The speech_recognition task needs utterances with transcripts ('
                      f'{", ".join(FEATURES)}); {info.name!r} has features '
                      f'{sorted(info.features)}. Use a speech recognition data set: '
                      '--config.data.name=spoken_sentences, speech_manifest (with '
                      '--config.data.path=MANIFEST.jsonl) or librispeech.')
    self.num_samples = info.spec()['audio'][0][0]
    self.hop_length = int(config.model.get('hop_length', speech_ctc.speech.FRONT_END['hop_length']))
    self.beam_size = int(config.decode.beam_size)
    self._tokenizer = None

  @property
  def tokenizer(self):
    if self._tokenizer is None:
      from jaxlab.data import transcripts  # pylint: disable=g-import-not-at-top
      self._tokenizer = transcripts.from_spec(self.info.tokenizer, self.workdir)
    return self._tokenizer

  # --- shapes ---------------------------------------------------------------------------

  def batch_spec(self):
    spec = self.info.spec()
    return {name: spec[name] for name in FEATURES}

  def model_signature(self):
    return (self.num_samples,), self.info.vocab_size

  # --- compiled -------------------------------------------------------------------------

  def model_inputs(self, batch, key, *, train):
    del key, train
    return (batch['audio'], batch['audio_length']), {}

  def frames(self, logits_BxTxV, batch):
    """(float32 log-probabilities, valid frames [B]) of the model's outputs."""
    lengths_B = speech_ctc.output_lengths(batch['audio_length'], self.hop_length)
    return jax.nn.log_softmax(logits_BxTxV.astype(jnp.float32)), jnp.minimum(
        lengths_B, logits_BxTxV.shape[1])

  def utterance_losses(self, logits_BxTxV, batch):
    """CTC loss of each utterance (nats, summed over its tokens)."""
    log_probs, lengths_B = self.frames(logits_BxTxV, batch)
    frame_pad = 1.0 - ctc_decoding.valid_frames(lengths_B, log_probs.shape[1]).astype(jnp.float32)
    labels = batch['labels']
    label_pad = 1.0 - ctc_decoding.valid_frames(batch['label_length'],
                                                labels.shape[1]).astype(jnp.float32)
    return optax.ctc_loss(log_probs, frame_pad, labels, label_pad, blank_id=ctc_decoding.BLANK)

  def loss(self, logits, batch):
    losses_B = self.utterance_losses(logits, batch)
    weights_B = batch['label_length'].astype(jnp.float32)
    if 'mask' in batch:
      losses_B, weights_B = losses_B * batch['mask'], weights_B * batch['mask']
    loss = losses_B.sum() / jnp.maximum(weights_B.sum(), 1.0)
    return loss, {}

  def decoded(self, logits, batch):
    log_probs, lengths_B = self.frames(logits, batch)
    greedy = ctc_decoding.greedy(log_probs, lengths_B)
    if self.beam_size <= 1:
      return greedy, greedy
    return ctc_decoding.beam_search(log_probs, lengths_B, self.beam_size), greedy

  def eval_outputs(self, logits, batch):
    (tokens, counts, _), (greedy_tokens, greedy_counts, _) = self.decoded(logits, batch)
    return dict(loss_sum=self.utterance_losses(logits, batch), tokens=tokens, counts=counts,
                greedy_tokens=greedy_tokens, greedy_counts=greedy_counts,
                labels=batch['labels'], label_length=batch['label_length'])

  def predict_outputs(self, logits, batch):
    (tokens, counts, scores), _ = self.decoded(logits, batch)
    return dict(tokens=tokens, counts=counts, scores=scores)

  # --- host -----------------------------------------------------------------------------

  def texts(self, tokens, counts):
    return [self.tokenizer.decode(row[:count]) for row, count in zip(tokens, counts)]

  def references(self, outputs):
    return self.texts(outputs['labels'], outputs['label_length'])

  def eval_metrics(self, outputs):
    from jaxlab.tasks import asr_metrics  # pylint: disable=g-import-not-at-top
    references = self.references(outputs)
    tokens = float(np.sum(outputs['label_length']))
    result = {'loss': float(np.sum(outputs['loss_sum'])) / max(tokens, 1.0)}
    result.update(asr_metrics.scores(references, self.texts(outputs['tokens'],
                                                           outputs['counts'])))
    greedy = asr_metrics.scores(references, self.texts(outputs['greedy_tokens'],
                                                       outputs['greedy_counts']))
    result.update(greedy_wer=greedy['wer'], greedy_cer=greedy['cer'])
    return result

  def eval_line(self, metrics):
    line = f'loss {metrics["loss"]:.4f}, WER {metrics["wer"]:.4f}, CER {metrics["cer"]:.4f}'
    if self.beam_size > 1:
      line += (f' (beam {self.beam_size}; greedy WER {metrics["greedy_wer"]:.4f}, '
               f'CER {metrics["greedy_cer"]:.4f})')
    return line

  def worst_examples(self, outputs, count=WORST_EXAMPLES):
    """The `count` worst-recognised utterances, most word errors first: JSON-able dicts."""
    from jaxlab.tasks import asr_metrics  # pylint: disable=g-import-not-at-top
    return asr_metrics.worst(self.references(outputs),
                             self.texts(outputs['tokens'], outputs['counts']), count)

  worst_examples_extension = 'jsonl'  # `jaxlab eval`'s WORKDIR/eval_<step>_worst.jsonl

  def write_worst_examples(self, outputs, path):
    from jaxlab import storage  # pylint: disable=g-import-not-at-top
    lines = [json.dumps(row) for row in self.worst_examples(outputs)]
    storage.write_text(path, ''.join(line + '\n' for line in lines))

  def predict_spec(self):
    return {'audio': ((self.num_samples,), np.dtype(np.float32)),
            'audio_length': ((), np.dtype(np.int32))}

  def predict_inputs(self, paths):
    from jaxlab.tasks import speech_inputs  # pylint: disable=g-import-not-at-top
    return speech_inputs.read_wavs(paths, self.info)

  def file_batch(self, named_bytes):
    """(batch, readable names, {name: error}) of uploaded WAV files (jaxlab serve)."""
    from jaxlab.tasks import speech_inputs  # pylint: disable=g-import-not-at-top
    return speech_inputs.batch_of(named_bytes, self.info)

  def predictions(self, outputs, top_k):
    del top_k  # one transcript per utterance
    return [dict(text=text, score=round(float(score), 4)) for text, score in
            zip(self.texts(outputs['tokens'], outputs['counts']), outputs['scores'])]

  def prediction_line(self, prediction):
    return prediction['text'] or '(nothing heard)'
