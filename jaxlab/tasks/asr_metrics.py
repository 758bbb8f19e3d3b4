"""WER and CER with jiwer (a maintained library, as papers' scoring scripts are), over
texts already normalised (jaxlab.data.transcripts.normalize).

jiwer counts word (or character) substitutions S, deletions D and insertions I against
the N reference words by the minimum edit distance; WER = (S + D + I) / N, over the
whole test set (not a mean of per-utterance rates), as sclite and papers report it.
"""


def _jiwer():
  try:
    import jiwer  # pylint: disable=g-import-not-at-top
  except ImportError:
    from jaxlab.errors import UserError  # pylint: disable=g-import-not-at-top
    raise UserError('WER and CER are computed with jiwer, which is not installed: '
                    "pip install 'jiwer>=4.0.0' (or jaxlab[speech]).") from None
  return jiwer


def scores(references, hypotheses):
  """{wer, cer, substitutions, deletions, insertions, reference_words} of a test set."""
  if not references:
    return dict(wer=0.0, cer=0.0, substitutions=0, deletions=0, insertions=0,
                reference_words=0)
  jiwer = _jiwer()
  words = jiwer.process_words(list(references), list(hypotheses))
  characters = jiwer.process_characters(list(references), list(hypotheses))
  return dict(wer=float(words.wer), cer=float(characters.cer),
              substitutions=int(words.substitutions), deletions=int(words.deletions),
              insertions=int(words.insertions),
              reference_words=int(words.hits + words.substitutions + words.deletions))


def worst(references, hypotheses, count):
  """The `count` utterances with the most word errors (then the highest WER): rows of
  index, reference, hypothesis, word errors, WER and CER."""
  jiwer = _jiwer()
  rows = []
  for index, (reference, hypothesis) in enumerate(zip(references, hypotheses)):
    words = jiwer.process_words(reference, hypothesis)
    errors = words.substitutions + words.deletions + words.insertions
    rows.append(dict(index=index, reference=reference, hypothesis=hypothesis,
                     word_errors=int(errors), wer=round(float(words.wer), 4),
                     cer=round(float(jiwer.cer(reference, hypothesis)), 4)))
  rows.sort(key=lambda row: (-row['word_errors'], -row['wer'], row['index']))
  return rows[:count]
