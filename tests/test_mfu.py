"""Model FLOPs per step, device peaks and MFU in the training records, summary and dry run."""

import functools
import contextlib
import io
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from benchmarks import flops as benchmark_flops
from jaxlab import tasks
from jaxlab.perf import device_peaks
from jaxlab.perf import dry_run
from jaxlab.commands import train as train_command
from jaxlab.perf import flops
from jaxlab.models import modeling
from jaxlab.parallel import mesh as mesh_lib
from jaxlab.train import loop
from jaxlab.perf import mfu
from jaxlab.train import programs as programs_lib
from jaxlab.train import step as step_lib
from tests.conftest import load_config, read_metrics

TINY_LM = dict(data__batch_size=4, data__seq_len=32, model__num_layers=2, model__embed_dim=64,
               model__num_heads=4, model__mlp_dim=128, num_steps=4)


def test_lm_formula_equals_a_hand_count():
  settings = dict(num_layers=1, embed_dim=8, num_heads=2, num_kv_heads=1, mlp_dim=16,
                  tie_embeddings=False)
  # Matmul weights: q 8x8 + k, v 8x(1 head x 4) each + out 8x8 + SwiGLU 3x8x16 + head 8x10
  # = 64 + 32 + 32 + 64 + 384 + 80 = 656; 6 x 656 per token, plus attention 12 L D T =
  # 12 x 1 x 8 x 4 = 384; 4320 per token, times 2 x 4 tokens.
  assert flops.transformer_lm_flops(settings, vocab_size=10, seq_len=4, batch_size=2) == 34560


@pytest.fixture(scope='module')
def tiny_lm():
  config = load_config('python_docs_lm', **TINY_LM)
  info, _ = dry_run.shape_info(config.data)
  task = tasks.create(config, info, compute_dtype=modeling.compute_dtype(config))
  return config, task


def _programs(config, task):
  return programs_lib.TrainPrograms(config, task, mesh_lib.create(config.mesh), config.num_steps)


def test_lm_formula_equals_the_traced_matmuls_and_is_near_xlas_count(tiny_lm):
  config, task = tiny_lm
  programs = _programs(config, task)
  analytic = flops.analytic_flops(config, task, 4)
  assert config.model.scan_layers  # traced scan bodies count once per layer
  assert programs.step_flops(4) == analytic  # every matmul of forward and backward, exactly
  # XLA's cost analysis counts a scan body once, so it is compared on unrolled layers.
  unrolled_config = load_config('python_docs_lm', **TINY_LM, model__scan_layers=False)
  unrolled = _programs(unrolled_config, task)
  batch = {k: jax.ShapeDtypeStruct((4, *shape), dtype)
           for k, (shape, dtype) in task.batch_spec().items()}
  step = functools.partial(step_lib.train_step, step_config=unrolled.step_config)
  xla = jax.jit(step).lower(unrolled.layout.shapes, batch).cost_analysis()['flops']
  # XLA adds element-wise work (norms, softmax, AdamW): about 6% at this size.
  assert analytic < xla < 1.15 * analytic


@pytest.mark.parametrize('name, layers', [
    ('mnist_mlp', lambda batch: benchmark_flops.mlp_layer_flops(batch, [784, 128, 10])),
    ('mnist_cnn', lambda batch: benchmark_flops.cnn_layer_flops(batch, (28, 28), 1, (32, 64),
                                                                (256,), 10)),
])
def test_traced_count_equals_the_benchmarks_hand_formulas(name, layers):
  # Both leave out the input images' gradient, which autodiff traces but nobody uses.
  config = load_config(name)
  info, _ = dry_run.shape_info(config.data)
  task = tasks.create(config, info, compute_dtype=modeling.compute_dtype(config))
  assert _programs(config, task).step_flops(32) == benchmark_flops.train_step_flops(layers(32))


def test_remat_and_grad_accumulation_leave_model_flops_unchanged(tiny_lm):
  config, task = tiny_lm
  heavier = load_config('python_docs_lm', remat='full', grad_accum_steps=2, **TINY_LM)
  assert _programs(heavier, task).step_flops(4) == _programs(config, task).step_flops(4)


def test_traced_count_multiplies_scans_and_counts_backward_convolutions_once():
  w, x = jnp.ones((64, 64)), jnp.ones((8, 64))
  scanned = lambda x: lax.scan(lambda c, _: (c @ w, None), x, None, length=10)[0]
  assert flops.traced_flops(scanned, x) == 10 * 2 * 8 * 64 * 64

  images = jnp.ones((2, 10, 10, 4))
  for groups, kernel in ((1, jnp.ones((3, 3, 4, 8))), (4, jnp.ones((3, 3, 1, 8)))):
    def loss(kernel, images, groups=groups):
      out = lax.conv_general_dilated(images, kernel, (2, 2), 'SAME', feature_group_count=groups,
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
      return jnp.sum(out ** 2)
    forward = flops.traced_flops(loss, kernel, images)
    assert forward == 2 * (2 * 5 * 5 * 8) * 9 * (4 // groups)
    # Gradients for the kernel and the input: twice the forward, not inflated by the
    # zeros a strided convolution's input gradient dilates with.
    assert flops.traced_flops(jax.grad(loss, argnums=(0, 1)), kernel, images) == 3 * forward


@pytest.mark.parametrize('kind, dtype, tflops', [
    ('TPU v4', 'bfloat16', 275.0),
    ('TPU v5 lite', 'bfloat16', 197.0),
    ('TPU v5e', 'bfloat16', 197.0),
    ('TPU v5', 'bfloat16', 459.0),
    ('TPU v5p', 'bfloat16', 459.0),
    ('TPU v6 lite', 'bfloat16', 918.0),
    ('NVIDIA A100-SXM4-40GB', 'bfloat16', 312.0),
    ('NVIDIA A100-SXM4-80GB', 'float32', 156.0),
    ('NVIDIA A100 80GB PCIe', 'float16', 312.0),
    ('NVIDIA H100 80GB HBM3', 'bfloat16', 989.5),
    ('NVIDIA H100 80GB HBM3', 'float32', 494.5),
    ('NVIDIA H100 PCIe', 'bfloat16', 756.5),
    ('NVIDIA H200', 'bfloat16', 989.5),
    ('NVIDIA H200 NVL', 'bfloat16', 835.5),
])
def test_peak_table_maps_device_kinds(kind, dtype, tflops):
  assert device_peaks.table_peak(kind, dtype).flops_per_second == tflops * 1e12


@pytest.mark.parametrize('kind, dtype', [('TPU v4 lite', 'bfloat16'), ('TPU v3', 'bfloat16'),
                                         ('NVIDIA GeForce RTX 4090', 'bfloat16'),
                                         ('NVIDIA H100 NVL', 'bfloat16'),
                                         ('NVIDIA H100 80GB HBM3', 'int8')])
def test_unknown_devices_and_dtypes_have_no_peak_and_say_why(kind, dtype):
  peak = device_peaks.table_peak(kind, dtype)
  assert peak.flops_per_second is None and ('no known peak' in peak.source or
                                            'no peak for int8' in peak.source)
  meter = mfu.Meter(1e12, 'test', peak)
  assert 'train/mfu' not in meter.scalars(2.0) and meter.describe(2.0).endswith('MFU n/a')
  assert meter.summary(steps=10, seconds=5.0)['mfu'] is None


def test_float32_at_a_non_default_precision_has_no_table_peak():
  with jax.default_matmul_precision('highest'):
    peak = device_peaks.table_peak('NVIDIA H100 80GB HBM3', 'float32')
  assert peak.flops_per_second is None and "'highest'" in peak.source


def test_mesh_peak_is_per_chip_times_devices():
  chip = types.SimpleNamespace(platform='gpu', device_kind='NVIDIA H200', process_index=0)
  mesh = types.SimpleNamespace(devices=np.array([chip] * 8))
  peak = device_peaks.mesh_peak(mesh, jnp.bfloat16)
  assert peak.flops_per_second == 8 * 989.5e12 and 'x 8 device(s)' in peak.source


def test_cpu_mesh_peak_is_the_host_rate_however_many_devices(tmp_path, monkeypatch):
  # Forced host-platform devices share one process's cores: the host is the "chip".
  monkeypatch.setattr(device_peaks, 'measure_gemm_flops', lambda dtype: 5e10)
  cpu = types.SimpleNamespace(platform='cpu', device_kind='cpu', process_index=0)
  peak = device_peaks.mesh_peak(types.SimpleNamespace(devices=np.array([cpu] * 8)),
                                jnp.float32, cache_dir=tmp_path)
  assert peak.flops_per_second == 5e10 and 'x 1 host(s)' in peak.source


def test_cpu_peak_is_measured_once_per_machine_setting(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(device_peaks, 'measure_gemm_flops',
                      lambda dtype: calls.append(dtype) or 5e10)
  monkeypatch.setattr(device_peaks, '_load_per_core', lambda: 0.2)
  monkeypatch.setenv('XLA_FLAGS', '')
  first = device_peaks.cpu_peak('float32', cache_dir=tmp_path)
  second = device_peaks.cpu_peak('float32', cache_dir=tmp_path)
  assert first == second and first.flops_per_second == 5e10 and calls == ['float32']
  monkeypatch.setenv('XLA_FLAGS', '--xla_force_host_platform_device_count=8')
  device_peaks.cpu_peak('float32', cache_dir=tmp_path)  # the same GEMM per device: cached
  assert calls == ['float32']
  monkeypatch.setenv('XLA_FLAGS', '--xla_cpu_multi_thread_eigen=false')
  device_peaks.cpu_peak('float32', cache_dir=tmp_path)  # other thread settings: measured again
  assert calls == ['float32', 'float32']


def test_a_peak_measured_on_a_busy_machine_is_remeasured_when_quieter(tmp_path, monkeypatch):
  rates, loads = iter([2e10, 5e10, 4e10]), iter([3.0, 3.0, 1.5, 0.5, 0.2])
  monkeypatch.setattr(device_peaks, 'measure_gemm_flops', lambda dtype: next(rates))
  monkeypatch.setattr(device_peaks, '_load_per_core', lambda: next(loads))
  busy = device_peaks.cpu_peak('float32', cache_dir=tmp_path)  # load 3: measures 2e10
  assert busy.flops_per_second == 2e10 and 'busy machine' in busy.source
  assert device_peaks.cpu_peak('float32', cache_dir=tmp_path) == busy  # as busy: cached
  assert device_peaks.cpu_peak('float32', cache_dir=tmp_path).flops_per_second == 5e10
  # Quieter still, a lower figure does not replace the best; the quiet load is kept.
  quiet = device_peaks.cpu_peak('float32', cache_dir=tmp_path)
  assert quiet.flops_per_second == 5e10 and 'busy machine' not in quiet.source
  assert device_peaks.cpu_peak('float32', cache_dir=tmp_path) == quiet  # no more measuring


def test_gemm_measurement_is_a_plausible_rate():
  rate = device_peaks.measure_gemm_flops(sizes=(256,), seconds_per_size=0.05)
  assert 1e8 < rate < 1e14


@pytest.fixture(scope='module')
def lm_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('mfu_lm')
  config = load_config('python_docs_lm', num_steps=20, steps_per_loop=10, log_every_steps=10,
                       eval_every_steps=20, checkpoint_every_steps=20)
  output = io.StringIO()
  with contextlib.redirect_stdout(output):
    summary = loop.run(config, str(workdir))
  return config, workdir, summary, output.getvalue()


def test_training_records_and_summary_carry_mfu(lm_run):
  _, workdir, summary, output = lm_run
  train = [r for r in read_metrics(workdir) if 'train/loss' in r]
  assert [r['step'] for r in train] == [10, 20]
  for record in train:
    assert 0 < record['train/mfu'] <= 1
    assert record['train/model_tflops_per_second'] == pytest.approx(
        summary['throughput']['flops_per_step'] * record['train/steps_per_second'] / 1e12)
  throughput = summary['throughput']
  assert throughput['model_flops'] == 20 * throughput['flops_per_step']
  assert 0 < throughput['mfu'] <= 1 and throughput['peak_flops_per_second'] > 0
  assert 'measured XLA:CPU float32 GEMM' in throughput['peak_source']
  assert throughput['flops_source'] == 'analytic formula for transformer_lm'
  assert 'MFU' in output and 'Model FLOPs per step' in output


def test_dry_run_states_flops_per_step_and_run_and_the_peak(tiny_lm):
  config, _ = tiny_lm
  output = io.StringIO()
  with contextlib.redirect_stdout(output):
    result = train_command.dry_run_report(config)
  assert result['flops_per_run'] == config.num_steps * result['flops_per_step']
  assert result['peak_flops_per_second'] > 0
  assert 'model FLOPs per train step' in output.getvalue() and 'MFU peak:' in output.getvalue()


def test_meter_throughput_arithmetic():
  meter = mfu.Meter(2e9, 'test', device_peaks.Peak(1e11, 'test peak'))
  assert meter.scalars(10.0) == {'train/model_tflops_per_second': 0.02, 'train/mfu': 0.2}
  assert meter.summary(steps=100, seconds=20.0)['mfu'] == pytest.approx(0.1)


@pytest.mark.parametrize('name, overrides', [
    ('mnist_cnn', {}),
    ('cifar10_resnet18', {}),  # BatchNorm statistics in the state
    ('cifar10_resnet18', dict(data__placement='stream')),  # the block over stacked batches
])
def test_a_block_traced_for_compiling_counts_the_steps_flops(name, overrides):
  # Training counts the FLOPs of the block it compiles instead of tracing the step again.
  config = load_config(name, steps_per_loop=3, **overrides)
  lowered = dry_run.lower(config)
  assert lowered.placement == overrides.get('data__placement', 'device')
  per_step = lowered.programs.block_flops(lowered.traced, lowered.length)
  assert lowered.length == 3 and per_step > 0
  assert per_step == lowered.programs.step_flops(config.data.batch_size)


def test_a_block_with_remat_or_micro_batches_leaves_counting_to_the_step(tiny_lm):
  _, task = tiny_lm
  for heavier in (dict(remat='full'), dict(grad_accum_steps=2)):
    programs = _programs(load_config('python_docs_lm', **TINY_LM, **heavier), task)
    assert not programs.counts_block_flops()
    assert programs.block_flops(traced_block=None, length=1) is None
