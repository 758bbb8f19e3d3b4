"""`jaxlab import` of a 1B-parameter Llama-shaped checkpoint: wall time and peak host RSS.

  python -m benchmarks.pretrained_import --out=benchmarks/pretrained_import_cpu.json [--dtype=float32]

Writes a synthetic checkpoint of TinyLlama-1.1B's shapes (22 layers, width 2048, 32 query
and 4 key/value heads, SwiGLU 5632, vocabulary 32000, untied head) with numpy and
`safetensors.numpy.save_file`, sharded like the Hugging Face hub's (about 1 GB files and
model.safetensors.index.json), then runs `jaxlab import` on it in a fresh process and
reads that process's peak resident memory (getrusage's ru_maxrss, which counts the
mapped file pages a read touches too). jaxlab keeps parameters in float32, so a float32
checkpoint is the like-for-like case for the budget "peak RSS below 1.5x the
checkpoint's size on disk" (no full extra copy); a bfloat16 checkpoint (--dtype) is half
the size on disk but still becomes 4.4 GB of float32 parameters.
"""

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

SHAPES = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
              num_attention_heads=32, num_key_value_heads=4)
SHARD_BYTES = 1 << 30


def tensor_shapes(c):
  d, f, v = c['hidden_size'], c['intermediate_size'], c['vocab_size']
  kv = c['num_key_value_heads'] * d // c['num_attention_heads']
  shapes = {'model.embed_tokens.weight': (v, d)}
  for i in range(c['num_hidden_layers']):
    p = f'model.layers.{i}.'
    shapes.update({p + 'input_layernorm.weight': (d,), p + 'post_attention_layernorm.weight': (d,),
                   p + 'self_attn.q_proj.weight': (d, d), p + 'self_attn.k_proj.weight': (kv, d),
                   p + 'self_attn.v_proj.weight': (kv, d), p + 'self_attn.o_proj.weight': (d, d),
                   p + 'mlp.gate_proj.weight': (f, d), p + 'mlp.up_proj.weight': (f, d),
                   p + 'mlp.down_proj.weight': (d, f)})
  shapes.update({'model.norm.weight': (d,), 'lm_head.weight': (v, d)})
  return shapes


def write_checkpoint(directory, dtype, config=SHAPES):
  """The synthetic checkpoint, shard by shard (one shard in memory at a time)."""
  import ml_dtypes  # pylint: disable=import-outside-toplevel,unused-import
  import safetensors.numpy  # pylint: disable=import-outside-toplevel
  os.makedirs(directory, exist_ok=True)
  rng = np.random.default_rng(0)
  shapes = tensor_shapes(config)
  groups, current, size = [], [], 0
  itemsize = np.dtype(dtype).itemsize
  for name, shape in shapes.items():
    nbytes = int(np.prod(shape)) * itemsize
    if current and size + nbytes > SHARD_BYTES:
      groups.append(current)
      current, size = [], 0
    current.append(name)
    size += nbytes
  groups.append(current)
  weight_map = {}
  for index, names in enumerate(groups):
    file = f'model-{index + 1:05d}-of-{len(groups):05d}.safetensors'
    tensors = {name: (rng.standard_normal(shapes[name], np.float32) * 0.02).astype(dtype)
               for name in names}
    safetensors.numpy.save_file(tensors, os.path.join(directory, file), metadata={'format': 'pt'})
    weight_map.update(dict.fromkeys(names, file))
    del tensors
  with open(os.path.join(directory, 'model.safetensors.index.json'), 'w') as f:
    json.dump(dict(metadata={}, weight_map=weight_map), f)
  with open(os.path.join(directory, 'config.json'), 'w') as f:
    json.dump(dict(config, architectures=['LlamaForCausalLM'], model_type='llama',
                   max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=10000.0,
                   tie_word_embeddings=False, hidden_act='silu', bos_token_id=1,
                   eos_token_id=2), f)
  return len(groups)


def _measure(source, workdir):
  """In the measured process: the import, then its time and peak RSS as JSON."""
  started = time.perf_counter()
  from jaxlab import pretrained  # pylint: disable=import-outside-toplevel
  record = pretrained.run_import(source, workdir)
  seconds = time.perf_counter() - started
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  print(json.dumps(dict(seconds=round(seconds, 1), import_seconds=record['seconds'],
                        peak_rss_bytes=peak, parameters=record['parameters'])))


def _baseline():
  """Peak RSS of a process that only imports jaxlab.pretrained (the runtime's own share)."""
  code = ('import resource, jax, jaxlab.pretrained; jax.devices(); '
          'print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)')
  return int(subprocess.run([sys.executable, '-c', code], check=True, capture_output=True,
                            text=True).stdout.strip().splitlines()[-1])


def _folder_bytes(path):
  return sum(os.path.getsize(os.path.join(root, name))
             for root, _, names in os.walk(path) for name in names)


def run(dtype, scratch, source=None):
  workdir = os.path.join(scratch, 'imported')
  started = time.perf_counter()
  if source is None:
    source = os.path.join(scratch, 'hf')
    write_checkpoint(source, dtype)
  shards = len([n for n in os.listdir(source) if n.endswith('.safetensors')])
  write_seconds = time.perf_counter() - started
  disk = sum(os.path.getsize(os.path.join(source, n)) for n in os.listdir(source)
             if n.endswith('.safetensors'))
  result = subprocess.run([sys.executable, '-m', 'benchmarks.pretrained_import', '--measure',
                           source, workdir], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  if result.returncode:
    raise RuntimeError(f'the import failed (exit {result.returncode}): {result.stderr[-3000:]}')
  measured = json.loads(result.stdout.strip().splitlines()[-1])
  return dict(
      checkpoint=dict(shapes=SHAPES, dtype=str(np.dtype(dtype)), shards=shards,
                      bytes_on_disk=disk, write_seconds=round(write_seconds, 1)),
      **measured,
      peak_rss_over_disk=round(measured['peak_rss_bytes'] / disk, 3),
      runtime_baseline_rss_bytes=_baseline(),
      workdir_bytes=_folder_bytes(workdir),
      machine=dict(cpu_count=os.cpu_count(), platform=platform.platform(),
                   python=platform.python_version()),
      date=time.strftime('%Y-%m-%d'))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out', default=None)
  parser.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16'))
  parser.add_argument('--scratch', default=None, help='where the ~9 GB of files go')
  parser.add_argument('--source', default=None, help='an existing synthetic checkpoint to '
                      'import (written by an earlier run with --keep_source); default: write one')
  parser.add_argument('--measure', nargs=2, metavar=('SOURCE', 'WORKDIR'),
                      help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.measure:
    _measure(*args.measure)
    return 0
  scratch = tempfile.mkdtemp(dir=args.scratch, prefix='jaxlab_import_bench_')
  try:
    report = run(args.dtype, scratch, args.source)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  text = json.dumps(report, indent=2)
  print(text)
  if args.out:
    existing = {}
    if os.path.exists(args.out):
      with open(args.out, encoding='utf-8') as f:
        existing = json.load(f)
    existing[args.dtype] = report
    with open(args.out, 'w', encoding='utf-8') as f:
      json.dump(existing, f, indent=2)
      f.write('\n')
  return 0


if __name__ == '__main__':
  sys.exit(main())
