"""Allowed values of config fields: each check returns what is wrong, or None.

Declared beside each field's default in `jaxlab.config`; `config.validate` runs them.
"""

import math
import numbers


def _allows(description, check):
  """`check`, carrying a human description of what it accepts (the config reference)."""
  check.allowed = description
  return check


def _bounds(minimum=None, maximum=None, above=None, below=None):
  parts = [f'{sign} {bound}' for sign, bound in (('≥', minimum), ('>', above), ('≤', maximum),
                                                 ('<', below)) if bound is not None]
  return ', '.join(parts)


def _is_int(value):
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(minimum=None):
  def check(value):
    if not _is_int(value):
      return 'must be an integer'
    if minimum is not None and value < minimum:
      return f'must be at least {minimum}'
    return None
  return _allows(' '.join(filter(None, ['integer', _bounds(minimum)])), check)


def number(minimum=None, maximum=None, above=None, below=None):
  """A finite real number within the given bounds (minimum/maximum inclusive)."""
  def check(value):
    if not _is_number(value) or not math.isfinite(value):
      return 'must be a finite number'
    if minimum is not None and value < minimum:
      return f'must be at least {minimum}'
    if maximum is not None and value > maximum:
      return f'must be at most {maximum}'
    if above is not None and value <= above:
      return f'must be greater than {above}'
    if below is not None and value >= below:
      return f'must be less than {below}'
    return None
  return _allows(' '.join(filter(None, ['number', _bounds(minimum, maximum, above, below)])),
                 check)


def boolean():
  return _allows('True or False',
                 lambda value: None if isinstance(value, bool) else 'must be True or False')


def text():
  return _allows('non-empty string', lambda value: None if isinstance(value, str) and value
                 else 'must be a non-empty string')


def optional_text():
  """'' (off) or a non-empty string: a str either way."""
  return _allows("string ('' for off)", lambda value: None if isinstance(value, str)
                 else "must be a string ('' for off)")


def names():
  """A tuple of non-empty strings (column names, ...), possibly empty."""
  def check(value):
    if isinstance(value, str) or not isinstance(value, (tuple, list)) or not all(
        isinstance(v, str) and v for v in value):
      return "must be a tuple of names, e.g. ('age', 'city')"
    return None
  return _allows('a tuple of names', check)


def increasing_numbers(above=None):
  """A tuple of finite real numbers in increasing order, each above `above`; possibly empty."""
  def check(value):
    if isinstance(value, str) or not isinstance(value, (tuple, list)) or not all(
        _is_number(v) and math.isfinite(v) for v in value):
      return 'must be a tuple of numbers, e.g. (2.0, 3.5)'
    if above is not None and any(v <= above for v in value):
      return f'must hold numbers greater than {above}'
    if any(b <= a for a, b in zip(value, value[1:])):
      return 'must be in increasing order'
    return None
  return _allows(' '.join(filter(None, ['increasing tuple of numbers', _bounds(above=above)])),
                 check)


def one_of(*choices):
  def check(value):
    return None if value in choices else f'must be one of {", ".join(map(repr, choices))}'
  return _allows(f'one of {", ".join(map(repr, choices))}', check)


def subset_of(*choices):
  def check(value):
    if isinstance(value, str) or not isinstance(value, (tuple, list)):
      return f'must be a tuple of names from {", ".join(map(repr, choices))}, e.g. ("crop",)'
    unknown = [v for v in value if v not in choices]
    return f'has unknown {unknown}; known: {", ".join(map(repr, choices))}' if unknown else None
  return _allows(f'tuple of {", ".join(map(repr, choices))}', check)


def optional(inner):
  """Unset (None) or a value that `inner` accepts."""
  return _allows(f'unset (None) or {inner.allowed}',
                 lambda value: None if value is None else inner(value))


def mesh_axis():
  def check(value):
    if not _is_int(value) or (value < 1 and value != -1):
      return 'must be a positive device count, or -1 to fill the remaining devices'
    return None
  return _allows('device count ≥ 1, or -1 (fill the remaining devices)', check)


def import_name(what, examples):
  """A registered name or 'package.module:Name' (resolved when the run starts)."""
  def check(value):
    if not isinstance(value, str) or not value or value.count(':') > 1 or value.endswith(':'):
      return f'must be a registered {what} name (e.g. {examples}) or "package.module:Name"'
    return None
  return _allows(f'registered {what} name ({examples}) or "package.module:Name"', check)


def model_name():
  return import_name('model', '"cnn", "mlp"')


def metric_name(prefix):
  """'' (off) or a metric named '<prefix><name>'; the task says at run time which exist."""
  def check(value):
    if not isinstance(value, str) or (value and not (value.startswith(prefix)
                                                     and len(value) > len(prefix))):
      return f"must be '' or a metric name starting with {prefix!r} (e.g. {prefix}accuracy)"
    return None
  return _allows(f"'' (off) or a task metric named {prefix}NAME", check)


def sharding_rules(mesh_axes):
  """Pairs (logical axis name, mesh axis or '' for replicated)."""
  allowed = ('', *mesh_axes)

  def check(value):
    if isinstance(value, str) or not isinstance(value, (tuple, list)):
      return 'must be a tuple of (logical axis, mesh axis) pairs'
    for rule in value:
      if (isinstance(rule, str) or not isinstance(rule, (tuple, list)) or len(rule) != 2
          or not isinstance(rule[0], str)):
        return f'has {rule!r}, which is not a (logical axis, mesh axis) pair'
      if rule[1] not in allowed:
        return f'maps {rule[0]!r} to {rule[1]!r}; mesh axes are {", ".join(map(repr, allowed))}'
    return None
  return _allows(f'(logical axis, mesh axis) pairs; mesh axes {", ".join(map(repr, allowed))}',
                 check)
