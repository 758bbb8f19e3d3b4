"""Architecture families: what a Hugging Face `architectures[0]` maps onto in jaxlab.

Each family module provides
  ARCHITECTURES                  the config.json architecture names it reads
  describe(checkpoint) -> Model  the jaxlab model, task and data shape the checkpoint is
  leaves(checkpoint, model, paths) -> {jaxlab path: leaf}   how each array is made
  ignored(name) -> bool          checkpoint tensors deliberately not used
and raises UnmappableCheckpoint for settings jaxlab's model cannot reproduce. The modules
are listed in jaxlab/pretrained/registry.py.
"""

import dataclasses
from typing import Any

from jaxlab.pretrained import tensors


@dataclasses.dataclass(frozen=True)
class Model:
  """The jaxlab side of an imported checkpoint."""
  model: dict  # config.model: name and options
  task: str  # config.task.name
  info: Any  # jaxlab.data.DatasetInfo of the inputs it takes
  data: dict  # config.data fields that shape its inputs (seq_len, image_size, ...)
  best_metric: str  # config.checkpoint.best_metric for fine-tuning
  best_mode: str
  notes: tuple = ()  # what the import could not carry over exactly, for the user


def layer_leaves(per_layer, paths, prefix, num_layers):
  """Leaves of a stack of alike layers under `prefix`: stacked ('prefix/rest', a scanned
  model) or per layer ('prefix/3/rest'), as `paths` (the jaxlab arrays) spell them.

  per_layer: (layer index) -> {rest: leaf}.
  """
  layers = [per_layer(i) for i in range(num_layers)]
  leaves = {}
  for path in paths:
    if not path.startswith(prefix + '/'):
      continue
    rest = path[len(prefix) + 1:]
    head, _, tail = rest.partition('/')
    if head.isdigit() and int(head) < num_layers and tail in layers[int(head)]:
      leaves[path] = layers[int(head)][tail]
    elif rest in layers[0]:
      leaves[path] = tensors.Stacked(tuple(layer[rest] for layer in layers))
  return leaves
