"""The field's metrics of text outputs, from the libraries papers use: BLEU and chrF from
sacrebleu (its default 13a tokenization, so figures compare with papers that quote its
signature) and ROUGE-1/2/L from Google's rouge-score (F-measure, Porter stemming on),
each on a 0-100 scale."""

from jaxlab.errors import UserError

NAMES = ('bleu', 'chrf', 'rouge1', 'rouge2', 'rougeL')
ROUGE_TYPES = ('rouge1', 'rouge2', 'rougeL')


def _libraries():
  try:
    import sacrebleu  # pylint: disable=g-import-not-at-top
    from rouge_score import rouge_scorer  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise UserError(f'Scoring text outputs needs sacrebleu and rouge-score ({error}); install '
                    "them with `pip install 'jaxlab[seq2seq]'`.") from None
  return sacrebleu, rouge_scorer


def corpus_scores(hypotheses, references):
  """{'bleu', 'chrf', 'rouge1', 'rouge2', 'rougeL'} of hypotheses against one reference
  each: corpus BLEU and chrF; ROUGE F-measures averaged over the examples."""
  sacrebleu, rouge_scorer = _libraries()
  hypotheses, references = list(hypotheses), list(references)
  scores = {'bleu': float(sacrebleu.corpus_bleu(hypotheses, [references]).score),
            'chrf': float(sacrebleu.corpus_chrf(hypotheses, [references]).score)}
  scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
  sums = dict.fromkeys(ROUGE_TYPES, 0.0)
  for hypothesis, reference in zip(hypotheses, references):
    for name, score in scorer.score(reference, hypothesis).items():
      sums[name] += score.fmeasure
  count = max(len(hypotheses), 1)
  scores.update({name: 100.0 * total / count for name, total in sums.items()})
  return scores


def signature():
  """sacrebleu's signature of its default BLEU, to quote beside a figure."""
  sacrebleu, _ = _libraries()
  bleu = sacrebleu.BLEU()
  bleu.corpus_score(['a'], [['a']])  # the signature names the reference count it has seen
  return str(bleu.get_signature())


def sentence_chrf(hypothesis, reference):
  """One example's chrF (0-100): what the worst-examples report ranks by."""
  sacrebleu, _ = _libraries()
  return float(sacrebleu.sentence_chrf(hypothesis, [reference]).score)
