"""The larger benchmark workloads (resnet18_cifar, lm_small): the PyTorch peers compute
jaxlab's functions, the analytic FLOPs are the ones PyTorch counts, and the report has
their rows. In-process and at a few examples: the suite itself runs them at size."""

import dataclasses

import numpy as np
import pytest

from benchmarks import flops
from benchmarks import report
from benchmarks.peers import common

torch = pytest.importorskip('torch')

from benchmarks.peers import torch_models  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks.peers import torch_peer  # pylint: disable=g-import-not-at-top,wrong-import-position

RESNET = common.get_workload('resnet18_cifar')
NARROW = 8  # a ResNet-18 of 8-16-32-64 channels: the same code, 64x fewer weights
# lm_small's model at a tenth of its width and depth: the same code, built in a blink.
LM = dataclasses.replace(common.get_workload('lm_small'), options=(
    ('vocab_size', 259), ('num_layers', 2), ('embed_dim', 32), ('num_heads', 2),
    ('mlp_dim', 128), ('seq_len', 64)))


def _torch_forward_flops(model, inputs, skip='attention'):
  """FLOPs PyTorch counts in a forward, leaving out its ops whose names hold `skip`."""
  from torch.utils.flop_counter import FlopCounterMode
  counter = FlopCounterMode(display=False)
  with counter, torch.no_grad():
    model(inputs)
  return sum(flops for op, flops in counter.get_flop_counts()['Global'].items()
             if skip not in str(op))


def test_resnet18_flops_are_the_ones_pytorch_counts():
  model = torch_models.make(RESNET).eval()
  counted = _torch_forward_flops(model, torch.zeros(1, 3, 32, 32))
  assert sum(flops.resnet18_layer_flops(1)) == counted


def test_lm_flops_are_three_forwards_of_the_ones_pytorch_counts():
  options = dict(LM.options)
  model = torch_models.make(LM)
  counted = _torch_forward_flops(model, torch.zeros(1, options['seq_len'], dtype=torch.long))
  expected = flops.transformer_step_flops(1, options['seq_len'], options['vocab_size'],
                                          options['num_layers'], options['embed_dim'],
                                          options['mlp_dim'])
  # Rotary and norms are not matmuls. Attention's two L x L products count in full in
  # the suite (as MFU is quoted); PyTorch's count of a causal SDPA varies by kernel, so
  # it is left out of its side and checked here by formula.
  full_attention = options['num_layers'] * 4 * options['seq_len'] ** 2 * options['embed_dim']
  assert expected == 3 * (counted + full_attention)


def test_lm_peers_have_jaxlab_parameter_count():
  from jaxlab.models import transformer
  options = dict(LM.options)
  settings = transformer.resolve((options['seq_len'],), {
      k: options[k] for k in ('num_layers', 'embed_dim', 'num_heads', 'mlp_dim')})
  count = sum(p.numel() for p in torch_models.make(LM).parameters())
  assert count == transformer.num_params(options['vocab_size'], settings)
  full = dict(common.get_workload('lm_small').options)
  settings = transformer.resolve((full['seq_len'],), {
      k: full[k] for k in ('num_layers', 'embed_dim', 'num_heads', 'mlp_dim')})
  assert 9e6 < transformer.num_params(full['vocab_size'], settings) < 11e6  # "~10M"


@pytest.fixture(scope='module')
def jax_resnet():
  """jaxlab's resnet18 (CIFAR stem) holding the shared INIT.npz, in eval mode."""
  from flax import nnx
  from benchmarks import jaxlab_peer
  from jaxlab import models
  init = common.make_resnet_init(np.random.default_rng(0),
                                 common.resnet18_shapes(width=NARROW))
  with nnx.use_eager_sharding(False):  # built in one compiled call, not op by op
    model = nnx.jit(lambda: models.REGISTRY['resnet18'](
        (32, 32, 3), 10, rngs=nnx.Rngs(0), stem='cifar', width=NARROW))()
  params = nnx.state(model, nnx.Param)
  nnx.replace_by_pure_dict(params, jaxlab_peer.jaxlab_params(init, 'resnet18'))
  nnx.update(model, params)
  model.eval()
  return model, init


@pytest.mark.slow  # compiles a (narrow) ResNet-18's init and forward
def test_torch_resnet_from_the_shared_init_computes_jaxlab_logits(jax_resnet):
  model, init = jax_resnet
  images = np.random.default_rng(0).uniform(size=(4, 32, 32, 3)).astype(np.float32)
  peer = torch_models.make(dataclasses.replace(
      RESNET, options=(*RESNET.options, ('width', NARROW))))
  torch_peer.load_weights(peer, init, 'resnet18')
  with torch.no_grad():
    expected = peer.eval()(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()
  from flax import nnx
  logits = nnx.jit(lambda m, x: m(x))(model, images)
  np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-3, atol=1e-4)


def _jax_lm(params=None):
  """jaxlab's transformer_lm at LM's sizes, holding `params` (INIT.npz names) if given."""
  from flax import nnx
  from benchmarks import jaxlab_peer
  from jaxlab.models import transformer
  options = dict(LM.options)
  sizes = {k: options[k] for k in ('num_layers', 'embed_dim', 'num_heads', 'mlp_dim')}
  with nnx.use_eager_sharding(False):
    model = transformer.create((options['seq_len'],), options['vocab_size'],
                               rngs=nnx.Rngs(0), **sizes)
  if params is not None:
    state = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(state, jaxlab_peer.jaxlab_params(params, 'transformer_lm'))
    nnx.update(model, state)
  return model


def test_lm_shared_init_has_jaxlabs_layout_and_scales():
  """INIT.npz's LM weights have jaxlab's parameter paths and its initialisers' scales."""
  import jax
  from flax import nnx
  own = nnx.to_pure_dict(nnx.state(_jax_lm(), nnx.Param))
  own = {'/'.join(str(k.key) for k in path): np.asarray(v)
         for path, v in jax.tree_util.tree_leaves_with_path(own)}
  shared = common.make_lm_init(np.random.default_rng(0), LM.param_shapes)
  assert {k: v.shape for k, v in shared.items()} == {k: v.shape for k, v in own.items()}
  for name, value in shared.items():
    assert value.dtype == np.float32, name
    np.testing.assert_allclose(value.std(), own[name].std(), rtol=0.1, atol=1e-6,
                               err_msg=name)


def test_torch_lm_from_the_shared_init_computes_jaxlab_logits():
  from flax import nnx
  init = common.make_lm_init(np.random.default_rng(0), LM.param_shapes)
  common.check_init(init, LM)
  options = dict(LM.options)
  tokens = np.random.default_rng(1).integers(0, options['vocab_size'], (4, options['seq_len']))
  logits = nnx.jit(lambda m, t: m(t))(_jax_lm(init), tokens)
  peer = torch_models.make(LM)
  torch_peer.load_weights(peer, init, 'transformer_lm')
  with torch.no_grad():
    expected = peer(torch.from_numpy(tokens)).numpy()
  np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-4, atol=1e-5)


def test_report_gives_the_larger_workloads_throughput_ratio_and_mfu():
  def row(workload, peer, rate, fraction):
    return dict(workload=workload, peer=peer, device='cpu', steps=12,
                steady_examples_per_second=rate, steady_gflops=1.0, fraction_of_peak=fraction,
                initial_loss=2.3, test_accuracy=0.1)
  results = {'rows': [row('lm_small', 'jaxlab', 5.0, 0.5), row('lm_small', 'torch', 4.0, 0.4)]}
  table = report.large_table(results)
  assert '| lm_small | jaxlab | cpu | 12 | 1,280 tokens/s | 1.25x | 1.0 | 50.0 |' in table
  assert report._speedup_target(results, 'lm_small') == (  # pylint: disable=protected-access
      '1.25x PyTorch\'s steady throughput; MFU 50.0%', 'yes')


@pytest.mark.parametrize('step_gflops, ratio', [(100.0, '1.25'), (60.0, '0.75')])
def test_report_compares_the_target_with_the_kernels_rate_alone(step_gflops, ratio):
  def row(peer, gflops):
    return dict(workload='lm_small', peer=peer, steady_gflops=gflops)
  measured = {'gflops': {'xla': 100.0, 'torch': 120.0}}
  note = report._kernels_note(  # pylint: disable=protected-access
      {'rows': [row('jaxlab', 50.0), row('torch', step_gflops)]}, 'lm_small', measured)
  assert '100.0 GFLOP/s in XLA and 120.0 GFLOP/s in PyTorch' in note
  assert 'PyTorch\'s kernels are 1.20x XLA\'s' in note
  assert f'be {1.25 * step_gflops:.1f} GFLOP/s, {ratio}x the rate XLA\'s kernels reach' in note


def test_lm_kernels_cover_the_whole_step_flops():
  from benchmarks import kernels
  options = dict(LM.options)
  measured = kernels.lm_matmuls(LM, repeats=1)
  assert measured['flops'] == flops.transformer_step_flops(
      LM.batch_size, options['seq_len'], options['vocab_size'], options['num_layers'],
      options['embed_dim'], options['mlp_dim'])
  assert measured['gflops']['xla'] > 0 and measured['gflops']['torch'] > 0


def test_gpu_lm_ratios_compare_like_precision_with_like():
  from benchmarks import run

  def row(peer, dtype):
    return dict(workload='lm_large', peer=peer, device='gpu', compute_dtype=dtype,
                test_accuracy=0.3, initial_loss=5.6, fit_seconds=1.0, steady_us_per_step=1.0,
                process_seconds=1.0)
  rows = [row('jaxlab', 'float32'), row('jaxlab_bf16', 'bfloat16'), row('torch', 'float32'),
          row('torch_bf16', 'bfloat16')]
  pairs = {(r['jaxlab'], r['peer']) for r in run.ratios(rows)}
  assert pairs == {('jaxlab', 'torch'), ('jaxlab_bf16', 'torch_bf16')}
  assert 'lm_large' in common.GPU_WORKLOADS
