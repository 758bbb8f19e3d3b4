"""A trained language model's sampler and tokenizer, for `jaxlab sample` (a language
model's continuation of a prompt, printed as it is made) and the server's /v1/generate.

Loads parameters only (like predict), tokenizes the prompt with the run's tokenizer and
streams the new text to stdout; see `jaxlab.inference.sampling` for the cache and the compiled loop.
--max_tokens is a most, like the end-of-text token that may come first: where the prompt
plus --max_tokens runs past the model's context, generation stops at the context and says
so on stderr (the default of 200 is longer than any shipped model's context, and a
first `jaxlab sample` should print text, not an error). The prompt itself is never cut: one
that leaves no room for a new token is refused.
"""

from flax import nnx

from jaxlab.inference import trained_run as inference
from jaxlab.inference import sampling
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
  tokenizer = text_inputs.tokenizer(run.task)
  return sampling.Sampler(run.programs.model, model.max_len, eos_id=tokenizer.eos_id), tokenizer


def new_tokens(sampler, prompt_length, max_tokens):
  """How many tokens to make: --max_tokens, or fewer where the context ends first."""
  problem = sampler.check_fits(prompt_length, 1) if max_tokens >= 1 else (
      f'--max_tokens={max_tokens} must be at least 1.')
  if problem and prompt_length >= sampler.max_len:
    problem = (f'The prompt ({prompt_length} tokens) fills the model\'s context of '
               f'{sampler.max_len} tokens (its max_len), leaving no room for a new token; '
               'shorten the prompt (it is never cut).')
  if problem:
    raise UserError(problem)
  return min(max_tokens, sampler.max_len - prompt_length)
