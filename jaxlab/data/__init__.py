"""Data sets by name, as random-access sources of named features.

A loader returns `Splits`: the `DatasetInfo` (what one example holds: each
feature's shape and dtype, and the classes, pixel range or tokenizer) and a
training and a test source (`jaxlab.data.sources`). The training input then places
them: whole on the devices (`jaxlab.data.pipeline`) or streamed by Grain
(`jaxlab.data.stream`), as `data.placement` says. This package re-exports the types
(info.py) and the registry of loaders (registry.py).
"""

from jaxlab.data.info import (
    KNOWN_SHAPES, DatasetInfo, Splits, example_bytes, from_arrays, image_info, load_info,
    save_info)
from jaxlab.data.registry import known_info, load
