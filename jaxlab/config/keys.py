"""Dotted config keys: listing them, looking one up, and the closest ones to a mistyped
key (for the unknown-key error of --config.KEY=VALUE)."""

import difflib

import ml_collections

from jaxlab.errors import UserError


def flat_keys(config, prefix=''):
  """All dotted leaf keys of a (nested) ConfigDict, e.g. 'optimizer.learning_rate'."""
  keys = []
  for name, value in config.items():
    key = f'{prefix}{name}'
    if isinstance(value, ml_collections.ConfigDict):
      keys.extend(flat_keys(value, key + '.'))
    else:
      keys.append(key)
  return keys


def closest_keys(config, key, n=3):
  """The valid keys closest to a mistyped one, best first: abbreviations ('lr' for
  learning_rate, 'warmup' for warmup_steps) in the same section, then similar spellings."""
  keys = flat_keys(config)
  section, _, leaf = key.rpartition('.')
  initials = lambda name: ''.join(word[:1] for word in name.split('_'))
  by_abbreviation = [k for k in keys if k.rpartition('.')[0] == section and leaf and (
      initials(k.rpartition('.')[2]) == leaf or k.rpartition('.')[2].startswith(leaf))]
  by_full = difflib.get_close_matches(key, keys, n=n, cutoff=0.5)
  by_leaf = [k for k in keys if difflib.get_close_matches(leaf, [k.rsplit('.', 1)[-1]], cutoff=0.7)]
  return list(dict.fromkeys(by_abbreviation + by_full + by_leaf))[:n]


def unknown_key_error(config, key):
  suggestions = closest_keys(config, key)
  hint = ', '.join(f'--config.{k}' for k in suggestions) or 'none close'
  return UserError(
      f'Unknown config key --config.{key}: the experiment has no such field. '
      f'Closest valid keys: {hint}. Run with --config.<key>=<value> using one of '
      'them, or print every field with `jaxlab train --config=... --dry_run`.')


def has_key(config, dotted):
  return lookup(config, dotted)[0]


def lookup(config, dotted):
  node = config
  for part in dotted.split('.'):
    if not hasattr(node, 'keys') or part not in node.keys():
      return False, None
    node = node[part]
  return True, node
