"""Writes a trained model into the new (or empty) folder --out as a file that runs
without jaxlab: --format=stablehlo (jax.export; runs with jax alone, any batch size) or
savedmodel (TensorFlow SavedModel, for TF Serving and Vertex AI)."""

from jaxlab.commands import common, options
from jaxlab.commands.options import Flag

USAGE = ('jaxlab export --workdir=DIR --out=DIR [--checkpoint=best] '
         '[--format=stablehlo|savedmodel] [--platforms=cpu,cuda,tpu] [--merge_lora]',)
FLAGS = (
    options.WORKDIR, options.CHECKPOINT,
    Flag('out', 'string', None, 'The new (or empty) folder to write the model to.'),
    Flag('format', 'string', 'stablehlo', 'stablehlo (jax.export, runs with jax alone) or '
         'savedmodel (TensorFlow SavedModel for TF Serving / Vertex AI).'),
    Flag('platforms', 'string', None, 'Comma-separated platforms to compile for, of cpu, cuda, '
         'rocm, tpu (default: cpu and this machine\'s backend).'),
    Flag('merge_lora', 'bool', False, 'Fold a LoRA run\'s adapters into its weights (the '
         'exported model is the plain one, with the same outputs).'),
    *options.MULTI_HOST,
)
POSITIONAL = None


def run(args):
  common.no_positional('export', args)
  workdir = common.workdir(args)
  common.start_runtime(args)
  main(workdir, args.out, checkpoint=args.checkpoint, fmt=args.format,
       platforms=args.platforms, merge_lora=args.merge_lora)
  return 0


def main(workdir, out, checkpoint='best', fmt='stablehlo', platforms=None, merge_lora=False):
  """Exports and says what was written; returns the signature."""
  from jaxlab.export import signature as signature_lib  # pylint: disable=g-import-not-at-top
  from jaxlab.export import write  # pylint: disable=g-import-not-at-top
  run_, signature, platforms = write.export(workdir, out, checkpoint, fmt, platforms,
                                            merge_lora=merge_lora)
  shown = ', '.join(f'{name} {signature_lib.shown(spec["shape"])} {spec["dtype"]}'
                    for name, spec in signature['inputs'].items())
  print(f'Exported step {run_.step} of {workdir} as {fmt} for {", ".join(platforms)} to {out} '
        f'(inputs: {shown}).', flush=True)
  return signature
