"""The signature.json of an export (inputs, outputs, preprocessing, classes, the
checkpoint's metrics) and the workdir files copied beside it, so that an export folder
reads like a workdir."""

import dataclasses
import datetime
import json
import os

import jax
import numpy as np

from jaxlab import data as data_lib
from jaxlab import storage
from jaxlab.export.program import COMPATIBILITY, FORMAT_VERSION, SIGNATURE, input_shapes
from jaxlab.tasks import language_model
from jaxlab.workdir import files as workdir_files


def signature_of(run, fmt, platforms, dims, outputs, program, **files):
  info = run.info
  return dict(
      format=f'jaxlab-{fmt}', format_version=FORMAT_VERSION,
      jaxlab_version=_jaxlab_version(), jax_version=jax.__version__,
      exported_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      compatibility=COMPATIBILITY,
      **files,
      workdir=run.workdir, checkpoint_step=run.step,
      task=run.config.task.name, model=run.config.model.name, data=info.name,
      compute_dtype=np.dtype(run.task.compute_dtype).name, platforms=list(platforms),
      dims=dims,
      inputs={name: dict(shape=shape, dtype=dtype.name)
              for name, (shape, dtype) in input_shapes(run, dims).items()},
      outputs=outputs, preprocessing=preprocessing(run, dims),
      class_names=list(info.class_names) or (
          [str(i) for i in range(info.num_classes)] if info.num_classes else []),
      metrics=checkpoint_metrics(run.workdir, run.step),
      weights=[dict(name=name, shape=list(w.shape), dtype=w.dtype.name)
               for name, w in zip(program.names, program.weights)])


def _jaxlab_version():
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  try:
    return metadata.version('jaxlab')
  except metadata.PackageNotFoundError:  # run from a source tree
    return 'unknown'


def preprocessing(run, dims):
  """How a raw input (one file of `jaxlab predict`) becomes the model's inputs."""
  info, spec = run.info, run.task.predict_spec()
  if 'image' in spec:
    height, width, channels = spec['image'][0]
    return dict(kind='image', height=height, width=width, channels=channels,
                color='L' if channels == 1 else 'RGB', resize='bilinear',
                pixel_range=[0.0, float(info.pixel_max)],
                note='8-bit pixels scaled from 0..255 to pixel_range, as float32')
  if 'audio' in spec:
    return dict(kind='audio', sample_rate=info.sample_rate, num_samples=spec['audio'][0][0],
                note='a WAV file: channels averaged, resampled to sample_rate, then padded '
                     'with zeros or cropped to num_samples')
  if info.tokenizer:
    length = next(iter(spec.values()))[0][0]  # every token input is (seq_len,)
    if isinstance(run.task, language_model.LanguageModel):
      note = ('one row per text: its last sequence_length tokens, with segment_ids 1 and '
              'positions 0, 1, ... on them and 0 on the padding after them')
    else:
      note = 'the first sequence_length tokens of the text, padded with token 0'
    return dict(kind='text', tokenizer=info.tokenizer, vocab_size=info.vocab_size,
                sequence_length=length, max_sequence_length=(dims.get('l') or {}).get('max'),
                note=note)
  return dict(kind='arrays', note='the inputs as the data set holds them')


def checkpoint_metrics(workdir, step):
  """The eval metrics of checkpoint `step`: `jaxlab eval`'s file, else training's last
  eval record at that step; None if neither."""
  path = workdir_files.path(workdir, workdir_files.eval_result(step))
  if storage.exists(path):
    return json.loads(storage.read_text(path))
  records = [json.loads(line) for line in
             storage.read_lines(workdir_files.path(workdir, workdir_files.METRICS))]
  evals = [r for r in records if r.get('step') == step and any(k.startswith('eval/') for k in r)]
  if not evals:
    return None
  return dict(step=step, **{k[len('eval/'):]: v for k, v in evals[-1].items()
                            if k.startswith('eval/')})


def write_signature(out, signature):
  with open(os.path.join(out, SIGNATURE), 'w', encoding='utf-8') as f:
    f.write(json.dumps(signature, indent=2) + '\n')


def copy_workdir_files(workdir, info, out):
  """What jaxlab's loaders read from a workdir: its config, data set info and tokenizer."""
  config_text = storage.read_text(workdir_files.path(workdir, workdir_files.CONFIG))
  with open(os.path.join(out, workdir_files.CONFIG), 'w', encoding='utf-8') as f:
    f.write(config_text)
  if info.tokenizer and info.tokenizer.get('kind') == 'sentencepiece':
    from jaxlab.data import tokenizers  # pylint: disable=g-import-not-at-top
    model = storage.as_epath(tokenizers.model_path(info.tokenizer, workdir)).read_bytes()
    with open(os.path.join(out, workdir_files.TOKENIZER), 'wb') as f:
      f.write(model)
    # A tokenizer shared between runs (an absolute 'file') is read from the copy.
    info = dataclasses.replace(info, tokenizer=dict(info.tokenizer, file=workdir_files.TOKENIZER))
  target = (info.preprocessing or {}).get('target_tokenizer')  # seq2seq's own target vocabulary
  if target and target.get('kind') == 'sentencepiece' and target.get('file') != info.tokenizer.get('file'):
    from jaxlab.data import tokenizers  # pylint: disable=g-import-not-at-top
    name = os.path.basename(target['file'])
    with open(os.path.join(out, name), 'wb') as f:
      f.write(storage.as_epath(tokenizers.model_path(target, workdir)).read_bytes())
    info = dataclasses.replace(info, preprocessing=dict(info.preprocessing,
                                                        target_tokenizer=dict(target, file=name)))
  data_lib.save_info(info, out)


def shown(shape):
  return '(' + ', '.join(map(str, shape)) + ')'
