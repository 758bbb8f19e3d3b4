"""Experiment configs (ml_collections.ConfigDict): the shared fields, their checks, and
the config a trained workdir holds.

An experiment starts from `jaxlab.config.defaults()` and picks its smoke variant with
`jaxlab.config.variant()`; this package re-exports the names experiments and commands
use, from fields.py (declarations), validation.py, keys.py, durations.py and saved.py.
"""

from jaxlab.config.durations import total_steps, warmup_steps
from jaxlab.config.fields import (
    DATA_NAMES, DEFAULT_SHARDING_RULES, MESH_AXES, SYNTHETIC_SHAPES, Field, defaults, fields,
    rules, variant)
from jaxlab.config.keys import closest_keys, flat_keys, has_key, lookup, unknown_key_error
from jaxlab.config.saved import CONFIG_FILE_NAME, load_from_workdir, save
from jaxlab.config.validation import validate
