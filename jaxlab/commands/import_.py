"""Imports a Hugging Face checkpoint folder (config.json, *.safetensors, and tokenizer.json
or tokenizer.model) as a new jaxlab workdir: Llama, Mistral and Qwen2 language models as
transformer_lm, ViT and ResNet image classifiers. eval, predict, sample and export read the
workdir. Needs `pip install 'jaxlab[pretrained]'`."""

# This module is import_.py because `import` is a Python keyword (commands/table.py MODULES).

from jaxlab.commands import common, options
from jaxlab.commands.options import Flag
from jaxlab.errors import UserError

USAGE = ('jaxlab import --source=HF_DIR --workdir=NEW_DIR',)
FLAGS = (
    Flag('source', 'string', None, 'A Hugging Face checkpoint folder (config.json, '
         '*.safetensors, tokenizer.json or tokenizer.model).'),
    Flag('workdir', 'string', None, 'The new (or empty) local folder to write the workdir to.'),
    *options.MULTI_HOST,
)
POSITIONAL = None


def run(args):
  if args.positional or not args.source:
    raise UserError('import takes --source=HF_DIR (a Hugging Face checkpoint folder) and '
                    f'--workdir=NEW_DIR, and no positional arguments (got {args.positional}).')
  common.start_runtime(args)
  main(args.source, args.workdir)
  return 0


def main(source, workdir):
  """Imports and says what was written; returns import.json's record."""
  try:
    from jaxlab import pretrained  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise UserError(f'jaxlab import needs {error.name}: pip install \'jaxlab[pretrained]\'.'
                    ) from None
  record = pretrained.run_import(source, workdir)
  notes = ''.join(f' Note: {note}.' for note in record['notes'])
  print(f'Imported {record["architecture"]} ({record["parameters"]:,} parameters) as '
        f'{record["model"]} into {workdir} in {record["seconds"]} s.{notes}', flush=True)
  return record
