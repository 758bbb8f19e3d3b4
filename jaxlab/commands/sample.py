"""Continues --prompt with a trained language model, printing the text as it is made
(--temperature=0 is greedy; --top_k_tokens and --top_p default to keeping every token).
--max_tokens is a most: generation stops earlier at the end-of-text token or at the end of
the model's context (said on stderr); a prompt that leaves no room is refused."""

import sys

from jaxlab.commands import common, options
from jaxlab.commands.options import Flag
from jaxlab.errors import UserError

USAGE = ('jaxlab sample --workdir=DIR --prompt=TEXT [--max_tokens=200] [--temperature=0.8] '
         '[--top_k_tokens=40] [--top_p=0.9] [--seed=0]',)
FLAGS = (
    options.WORKDIR, options.CHECKPOINT,
    Flag('prompt', 'string', None, 'The text to continue.'),
    Flag('max_tokens', 'integer', 200, 'The most new tokens to generate (fewer if the model '
         'ends the text or its context ends first).'),
    Flag('temperature', 'float', 0.8, 'Softmax temperature; 0 picks the most likely token '
         '(greedy).'),
    Flag('top_k_tokens', 'integer', 0, 'Draw only from the K most likely tokens (0: from all '
         'of them).'),
    Flag('top_p', 'float', 1.0, 'Draw from the smallest set of likeliest tokens whose '
         'probability reaches P (nucleus sampling); 1 keeps all.'),
    Flag('seed', 'integer', 0, 'Random seed; the same seed gives the same text.'),
    *options.MULTI_HOST,
)
POSITIONAL = None


def run(args):
  common.no_positional('sample', args, '; give the text with --prompt="..."')
  if args.prompt is None:
    raise UserError('sample needs a prompt: jaxlab sample --workdir=DIR --prompt="Once upon".')
  workdir = common.workdir(args)
  common.start_runtime(args)
  return main(workdir, args.prompt, checkpoint=args.checkpoint, max_tokens=args.max_tokens,
              temperature=args.temperature, top_k=args.top_k_tokens, top_p=args.top_p,
              seed=args.seed)


def main(workdir, prompt, *, checkpoint='best', max_tokens=200, temperature=0.8, top_k=0,
         top_p=1.0, seed=0, out=sys.stdout, err=sys.stderr):
  """Prints the prompt's continuation as it is generated; returns 0."""
  if temperature < 0 or not 0 < top_p <= 1:
    raise UserError(f'--temperature={temperature} must be >= 0 (0 is greedy) and '
                    f'--top_p={top_p} in (0, 1].')
  from jaxlab.inference import lm_sampler, sampling  # pylint: disable=g-import-not-at-top
  run, sampler, tokenizer = lm_sampler.load(workdir, checkpoint)
  prompt_ids = tokenizer.encode(prompt)
  count = lm_sampler.new_tokens(sampler, len(prompt_ids), max_tokens)
  settings = sampling.Settings.create(temperature=temperature, top_k=top_k, top_p=top_p,
                                      max_tokens=count, seed=seed)
  text = sampling.TextStream(tokenizer.decode)
  print(prompt, end='', file=out, flush=True)
  made = 0
  for ids in sampler.stream(run.variables, prompt_ids, settings):
    made += len(ids)
    print(text.add(ids), end='', file=out, flush=True)
  print(text.finish(), file=out, flush=True)
  if made == count < max_tokens:
    print(f'jaxlab: stopped after {count} new tokens at the model\'s context of '
          f'{sampler.max_len} tokens (its max_len), before --max_tokens={max_tokens}; a model '
          'trained with a larger --config.data.seq_len writes longer text.', file=err, flush=True)
  return 0
