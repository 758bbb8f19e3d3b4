"""Class labels given as values (strings, integers, booleans) turned into class indices.

The classes are the distinct values of every split, sorted (numbers numerically, text
alphabetically, as Keras orders class folders); a class is its place in that order, and
its name the value as text. A missing value (None) is no class: -1.
"""

import numpy as np

from jaxlab.errors import UserError


def class_indices(splits, where, known=()):
  """(class names, [int32 indices per split]) of `splits`, lists of label values;
  `known`: values that are classes even where no example holds them (empty folders)."""
  values = {v for split in splits for v in split if v is not None} | set(known)
  kinds = {type(v) for v in values}
  if not values:
    raise UserError(f'{where} holds no labels.')
  if kinds <= {int, bool, np.int64, np.int32, np.bool_}:
    ordered = sorted(values, key=int)
  elif kinds <= {str}:
    ordered = sorted(values)
  else:
    raise UserError(f'{where}: labels must be all text or all integers, not a mix of '
                    f'{sorted(k.__name__ for k in kinds)}.')
  lookup = {value: index for index, value in enumerate(ordered)}
  indices = [np.asarray([lookup.get(v, -1) for v in split], np.int32) for split in splits]
  return tuple(str(v) for v in ordered), indices
