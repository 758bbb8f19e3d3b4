"""`jaxlab sample`: a language model's continuation of a prompt, printed as it is made.

Loads parameters only (like predict), tokenizes the prompt with the run's tokenizer and
streams the new text to stdout; see `jaxlab.sampling` for the cache and the compiled loop.
A prompt plus --max_tokens longer than the model's context is refused, never truncated.
"""

import sys

from flax import nnx

from jaxlab import inference, sampling
from jaxlab.errors import UserError
from jaxlab.models import transformer
from jaxlab.tasks import language_model, text_inputs


def load(workdir, checkpoint='best'):
  """(TrainedRun, Sampler, tokenizer) of a language model's workdir; UserError otherwise."""
  run = inference.load(workdir, checkpoint)
  sampler, tokenizer = sampler_of(run)
  return run, sampler, tokenizer


def sampler_of(run):
  """(Sampler, tokenizer) of a loaded language model's run; UserError otherwise."""
  workdir = run.workdir
  if not isinstance(run.task, language_model.LanguageModel):
    raise UserError(f'{workdir} holds a {run.config.task.name!r} run; `jaxlab sample` needs a '
                    'language model (task language_model, e.g. experiments/python_docs_lm.py). '
                    'Use `jaxlab predict` for this one.')
  model = nnx.merge(run.programs.model.eval_graph, run.variables.params,
                    run.variables.model_state)
  if not isinstance(model, transformer.TransformerLM):
    raise UserError(f'`jaxlab sample` supports the transformer_lm model; {workdir} holds a '
                    f'{type(model).__name__}.')
  return sampling.Sampler(run.programs.model, model.max_len), text_inputs.tokenizer(run.task)


def main(workdir, prompt, *, checkpoint='best', max_tokens=200, temperature=0.8, top_k=0,
         top_p=1.0, seed=0, out=sys.stdout):
  """Prints the prompt's continuation as it is generated; returns 0."""
  if temperature < 0 or not 0 < top_p <= 1:
    raise UserError(f'--temperature={temperature} must be >= 0 (0 is greedy) and '
                    f'--top_p={top_p} in (0, 1].')
  run, sampler, tokenizer = load(workdir, checkpoint)
  prompt_ids = tokenizer.encode(prompt)
  problem = sampler.check_fits(len(prompt_ids), max_tokens)
  if problem:
    raise UserError(problem)
  settings = sampling.Settings.create(temperature=temperature, top_k=top_k, top_p=top_p,
                                      max_tokens=max_tokens, seed=seed)
  text = sampling.TextStream(tokenizer.decode)
  print(prompt, end='', file=out, flush=True)
  for ids in sampler.stream(run.variables, prompt_ids, settings):
    print(text.add(ids), end='', file=out, flush=True)
  print(text.finish(), file=out, flush=True)
  return 0
