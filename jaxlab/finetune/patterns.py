"""Parameter path patterns: regular expressions matched (in full) against '/'-joined
parameter paths such as 'dense/0/kernel' or 'convs/1/bias'.

Config values are tuples of strings, each of which may hold several patterns separated
by commas (`--config.init.reset='head/.*,dense/1/.*'`); learning-rate multipliers are
'PATTERN=FACTOR' strings or (PATTERN, FACTOR) pairs. Pure helpers, no JAX state.
"""

import re


def path_name(path):
  """'dense/0/kernel' for a jax tree path."""
  return '/'.join(str(getattr(k, 'key', getattr(k, 'idx', getattr(k, 'name', k)))) for k in path)


def paths(tree):
  """The '/'-joined path of every leaf of `tree`, in leaf order."""
  import jax  # pylint: disable=g-import-not-at-top  (configs load without jax)
  leaves = jax.tree_util.tree_leaves_with_path(tree, is_leaf=lambda x: hasattr(x, 'shape'))
  return [path_name(path) for path, _ in leaves]


def map_with_names(fn, tree, *rest):
  """tree.map of fn(path name, leaf, *leaves of `rest` at that path)."""
  import jax  # pylint: disable=g-import-not-at-top
  return jax.tree_util.tree_map_with_path(lambda path, *leaves: fn(path_name(path), *leaves),
                                          tree, *rest)


def parse(value):
  """A tuple of pattern strings from a config value: a string or a tuple of strings, each
  possibly comma-separated."""
  if isinstance(value, str):
    value = (value,)
  return tuple(p.strip() for item in value or () for p in str(item).split(',') if p.strip())


def matches(name, patterns):
  return any(re.fullmatch(pattern, name) for pattern in patterns)


def parse_multipliers(value):
  """((pattern, factor), ...) from 'PATTERN=FACTOR' strings or (PATTERN, FACTOR) pairs."""
  pairs = []
  for item in value or ():
    if isinstance(item, str):
      for text in (t for t in item.split(',') if t.strip()):
        pattern, sep, factor = text.rpartition('=')
        if not sep or not pattern.strip():
          raise ValueError(f'{text!r} is not PATTERN=FACTOR')
        pairs.append((pattern.strip(), float(factor)))
    else:
      pattern, factor = item
      pairs.append((str(pattern), float(factor)))
  return tuple(pairs)


def multiplier(name, pairs):
  """The factor of the first pattern that matches `name` (1.0 if none does)."""
  return next((factor for pattern, factor in pairs if re.fullmatch(pattern, name)), 1.0)


# --- config checks (declared in jaxlab.config.fields) --------------------------------------


def _bad_regex(patterns):
  for pattern in patterns:
    try:
      re.compile(pattern)
    except re.error as error:
      return f'{pattern!r} is not a regular expression ({error})'
  return None


def check_patterns():
  """A tuple of regular expressions over parameter paths (comma-separated allowed)."""
  def check(value):
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value):
      return "must be a tuple of regular expressions, e.g. ('head/.*',)"
    return _bad_regex(parse(value))
  check.allowed = "tuple of regular expressions over '/'-joined parameter paths"
  return check


def check_multipliers():
  """A tuple of 'PATTERN=FACTOR' strings or (PATTERN, FACTOR) pairs, factors >= 0."""
  def check(value):
    if not isinstance(value, (tuple, list)):
      return "must be a tuple of 'PATTERN=FACTOR' strings, e.g. ('convs/.*=0.1',)"
    try:
      pairs = parse_multipliers(value)
    except (ValueError, TypeError) as error:
      return f"must hold 'PATTERN=FACTOR' strings or (PATTERN, FACTOR) pairs: {error}"
    if any(factor < 0 for _, factor in pairs):
      return 'factors must be >= 0 (0 freezes)'
    return _bad_regex([pattern for pattern, _ in pairs])
  check.allowed = "tuple of 'PATTERN=FACTOR' strings (or pairs), factors ≥ 0"
  return check
