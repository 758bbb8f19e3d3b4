"""Pretrained weights in: Hugging Face checkpoints (config.json + *.safetensors) as jaxlab
models and workdirs (`jaxlab import`, `load`)."""

from jaxlab.pretrained.errors import UnmappableCheckpoint
from jaxlab.pretrained.importer import run_import
from jaxlab.pretrained.loading import load, model_config

__all__ = ['UnmappableCheckpoint', 'load', 'model_config', 'run_import']
