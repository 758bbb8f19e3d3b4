"""The architecture families `jaxlab import` reads (each a module described in
jaxlab/pretrained/families.py), and the one a checkpoint belongs to."""

from jaxlab.pretrained import errors, hf_llama, hf_resnet, hf_vit

FAMILIES = (hf_llama, hf_vit, hf_resnet)


def family(checkpoint):
  """The family module of `checkpoint`'s architecture; UnmappableCheckpoint otherwise."""
  for module in FAMILIES:
    if checkpoint.architecture in module.ARCHITECTURES:
      return module
  known = [name for module in FAMILIES for name in module.ARCHITECTURES]
  raise errors.UnmappableCheckpoint(
      f'Cannot import the checkpoint {checkpoint.directory}: its architecture '
      f'{checkpoint.architecture!r} (config.json "architectures") is not one jaxlab maps. '
      f'Supported: {", ".join(known)}.')
