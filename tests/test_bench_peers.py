"""benchmarks/peers: the shared helpers, and each installed peer end to end.

Peers run as the runner runs them, `python -m benchmarks.<peer module>` in a
subprocess, on a small synthetic data set; jaxlab's entry (benchmarks/jaxlab_peer.py)
is one of them. A peer whose framework is not installed is skipped.
"""

import functools
import importlib.util
import json
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

from benchmarks import run as bench_run  # pylint: disable=g-import-not-at-top
from benchmarks.peers import common  # pylint: disable=g-import-not-at-top

# Peer -> (module, the package it needs).
PEERS = {"jaxlab_peer": ("benchmarks.jaxlab_peer", "jax"),
         "flax_loop_peer": ("benchmarks.peers.flax_loop_peer", "flax"),
         "torch_peer": ("benchmarks.peers.torch_peer", "torch"),
         "keras_peer": ("benchmarks.peers.keras_peer", "tensorflow")}
N_TRAIN, N_TEST, BATCH = 2000, 500, 32
# The runs the tests share (one process per peer and setting): two MLP epochs, so that
# a steady epoch follows the first; one CNN epoch.
EPOCHS = {"seed_mlp": 2, "mnist_cnn": 1}
CHANCE = 1.0 / common.NUM_CLASSES


def installed(peer):
  return importlib.util.find_spec(PEERS[peer][1]) is not None


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  folder = tmp_path_factory.mktemp("peers")
  paths = {"data": folder / "data.npz"}
  common.save_npz(paths["data"], common.make_synthetic_mnist(N_TRAIN, N_TEST, seed=1))
  for workload in ("seed_mlp", "mnist_cnn"):
    paths[workload] = folder / f"init_{workload}.npz"
    common.save_npz(paths[workload], common.make_init(workload, seed=0))
  return folder, paths


@pytest.fixture(scope="module")
def run_peer(files):
  """Runs a peer once per distinct argument set, returning its RESULT.json with the
  process's wall time measured here, outside it, as `outside_seconds`."""
  folder, paths = files

  @functools.cache
  def run(peer, workload, epochs, batch_size=BATCH, extra=()):
    module, package = PEERS[peer]
    pytest.importorskip(package)
    tag = "".join(flag.strip("-").replace("=", "_") for flag in extra)
    out = folder / f"{peer}_{workload}_{epochs}_{batch_size}{tag}.json"
    cmd = [sys.executable, "-m", module,
           f"--workload={workload}", f"--data={paths['data']}",
           f"--init={paths[workload]}", f"--epochs={epochs}",
           f"--batch_size={batch_size}", f"--out={out}", *extra]
    started, spawned_at = time.perf_counter(), time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)
    outside_seconds, exited_at = time.perf_counter() - started, time.time()
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.read_text())
    return dict(result, outside_seconds=outside_seconds,
                **bench_run.phase_seconds(result, spawned_at, exited_at))

  return run


def numpy_mlp_initial_loss(init, images, labels):
  """The MLP's mean cross-entropy from INIT.npz, in float64 numpy: no framework."""
  x = images.reshape(len(images), -1).astype(np.float64)
  hidden = np.maximum(x @ init["dense1/kernel"] + init["dense1/bias"], 0.0)
  logits = hidden @ init["dense2/kernel"] + init["dense2/bias"]
  shifted = logits - logits.max(axis=1, keepdims=True)
  log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
  return -log_probs[np.arange(len(labels)), labels].mean(), logits


# ---------------------------------------------------------------------------
# Helpers in common.py.


@pytest.mark.parametrize("workload", sorted(  # lm_large: 200M weights, for GPUs
    w for w in common.WORKLOADS
    if common.get_workload(w).shares_init and w not in common.GPU_WORKLOADS))
def test_make_init_follows_the_documented_layout(workload):
  params = common.make_init(workload, seed=0)
  spec = common.get_workload(workload)
  assert {k: v.shape for k, v in params.items()} == dict(spec.param_shapes)
  for name, value in params.items():
    assert value.dtype == np.float32, name
    if name.endswith("/bias"):
      assert not value.any(), name


def test_make_init_is_glorot_uniform():
  kernel = common.make_init("mnist_cnn", seed=0)["conv2/kernel"]  # 3x3x32x64.
  limit = np.sqrt(6.0 / (9 * 32 + 9 * 64))
  assert np.abs(kernel).max() <= limit
  assert np.abs(kernel).max() > 0.99 * limit
  np.testing.assert_allclose(kernel.std(), limit / np.sqrt(3), rtol=0.02)


def test_make_init_is_deterministic_per_seed():
  a, b, c = (common.make_init("seed_mlp", seed) for seed in (0, 0, 1))
  np.testing.assert_array_equal(a["dense1/kernel"], b["dense1/kernel"])
  assert not np.array_equal(a["dense1/kernel"], c["dense1/kernel"])


def test_check_init_names_the_expected_layout():
  params = common.make_init("seed_mlp", seed=0)
  with pytest.raises(ValueError, match="make_init"):
    common.check_init(params, common.get_workload("mnist_cnn"))


def test_synthetic_mnist_is_mnist_shaped_and_deterministic(tmp_path):
  data = common.make_synthetic_mnist(300, 100, seed=3)
  assert data["x_train"].shape == (300, 28, 28, 1)
  assert data["x_test"].shape == (100, 28, 28, 1)
  assert data["x_train"].dtype == np.float32
  assert data["y_train"].dtype == np.int32
  assert 0.0 <= data["x_train"].min() and data["x_train"].max() <= 1.0
  assert set(data["y_train"]) == set(range(10))
  common.save_npz(tmp_path / "d.npz", data)
  again = common.load_npz(tmp_path / "d.npz")
  for name, value in common.make_synthetic_mnist(300, 100, seed=3).items():
    np.testing.assert_array_equal(again[name], value)


def test_synthetic_mnist_is_learnable_but_not_trivial():
  data = common.make_synthetic_mnist(5000, 1000, seed=0)
  x_train = data["x_train"].reshape(5000, -1)
  x_test = data["x_test"].reshape(1000, -1)
  centroids = np.stack([x_train[data["y_train"] == c].mean(0) for c in range(10)])
  distances = ((x_test[:, None] - centroids[None])**2).sum(-1)
  accuracy = np.mean(distances.argmin(1) == data["y_test"])
  assert 0.5 < accuracy < 0.99


def test_parse_args_defaults_follow_the_workload():
  args = common.parse_args(["--workload=mlp_large_batch", "--data=d",
                            "--init=i", "--out=o"])
  assert (args.batch_size, args.epochs) == (4096, 5)
  args = common.parse_args(["--workload=seed_mlp", "--data=d", "--init=i",
                            "--out=o", "--epochs=0", "--batch_size=8"])
  assert (args.batch_size, args.epochs) == (8, 0)


# ---------------------------------------------------------------------------
# The peers, end to end.


@pytest.mark.slow  # runs the peers in subprocesses
@pytest.mark.parametrize("workload", ["seed_mlp", "mnist_cnn"])
@pytest.mark.parametrize("peer", sorted(PEERS))
def test_peer_trains_well_above_chance(run_peer, peer, workload):
  epochs = EPOCHS[workload]
  result = run_peer(peer, workload, epochs=epochs)
  assert result["status"] == "ok"
  assert (result["workload"], result["epochs"]) == (workload, epochs)
  assert result["test_accuracy"] > CHANCE + 0.25
  assert result["final_train_loss"] < result["initial_loss"]


def test_timing_fields_from_known_clock_readings():
  # A fit that starts at t=10 s and whose three epochs of 500 steps end at 13, 14 and
  # 15 s: the first epoch took 3 s, each steady one 1 s, i.e. 2000 us per step.
  fields = common.timing_fields(10.0, [13.0, 14.0, 15.0], steps_per_epoch=500,
                                batch_size=32)
  assert fields["fit_seconds"] == 5.0
  assert fields["epoch_seconds"] == [3.0, 1.0, 1.0]
  assert (fields["steps"], fields["examples"]) == (1500, 48000)
  assert fields["steady_us_per_step"] == pytest.approx(2000.0)
  assert fields["steady_examples_per_second"] == pytest.approx(16000.0)
  assert fields["warmup_seconds"] == pytest.approx(2.0)


def test_timing_fields_without_a_steady_epoch():
  fields = common.timing_fields(0.0, [4.0], steps_per_epoch=100, batch_size=8)
  assert fields["fit_seconds"] == 4.0 and fields["steps"] == 100
  assert fields["steady_us_per_step"] is None and fields["warmup_seconds"] is None
  assert common.timing_fields(0.0, [], 100, 8)["steps"] == 0


@pytest.mark.slow  # runs the peers in subprocesses
@pytest.mark.parametrize("peer", sorted(PEERS))
def test_peer_reports_timing_and_resources(run_peer, peer):
  result = run_peer(peer, "seed_mlp", epochs=EPOCHS["seed_mlp"])
  # Every peer drops the last partial batch: 2000 // 32 = 62 steps per epoch.
  assert (result["steps"], result["examples"]) == (124, 124 * 32)
  assert len(result["epoch_seconds"]) == 2
  # The fit, and its steady second epoch of 62 steps, happen inside the process, as
  # timed from outside it.
  assert 0 < result["fit_seconds"] < result["outside_seconds"]
  assert 0 < result["steady_us_per_step"] * 62 * 1e-6 < result["fit_seconds"]
  # The process in phases: the peer's clock readings fall in order inside it, and its
  # fit phase is the fit it reports (jaxlab's also holds its initial-loss check).
  phases = [result[f"phase_{name}_seconds"] for name in bench_run.PHASES]
  assert all(seconds > 0 for seconds in phases), phases
  fit_phase = result["phase_fit_seconds"]
  if peer == "jaxlab_peer":
    assert result["fit_seconds"] < fit_phase < result["outside_seconds"]
  else:
    assert fit_phase == pytest.approx(result["fit_seconds"], abs=1e-3)
  assert result["peak_rss_mb"] > 50
  assert result["versions"]


@pytest.mark.slow  # runs the peer in a subprocess
def test_jaxlab_streamed_run_is_cut_into_phases_from_its_compilation(run_peer):
  """Streamed, nothing is placed on the devices: the fit starts at compiling."""
  result = run_peer("jaxlab_peer", "seed_mlp", epochs=EPOCHS["seed_mlp"],
                    extra=("--placement=stream",))
  assert result["placement"] == "stream"
  phases = [result[f"phase_{name}_seconds"] for name in bench_run.PHASES]
  assert all(seconds > 0 for seconds in phases), phases
  assert result["fit_seconds"] < result["phase_fit_seconds"] < result["outside_seconds"]


@pytest.mark.slow  # runs the peers in subprocesses
def test_jaxlab_epoch_clock_agrees_with_its_loop_timer(run_peer):
  """jaxlab's epochs are read from the steps/s it logs; its loop times the same
  training with a clock of its own."""
  result = run_peer("jaxlab_peer", "seed_mlp", epochs=EPOCHS["seed_mlp"])
  epochs = sum(result["epoch_seconds"]) - result["place_seconds"] - result["compile_seconds"]
  assert epochs == pytest.approx(result["loop_train_seconds"], rel=0.2, abs=0.2)
  assert result["compile_seconds"] > 0 and result["place_seconds"] > 0


@pytest.mark.slow  # runs the peers in subprocesses
@pytest.mark.parametrize("peer", sorted(PEERS))
def test_epochs_zero_only_evaluates(run_peer, peer):
  untrained = run_peer(peer, "seed_mlp", epochs=0)
  trained = run_peer(peer, "seed_mlp", epochs=EPOCHS["seed_mlp"])
  assert untrained["steps"] == 0
  assert untrained["initial_loss"] == pytest.approx(trained["initial_loss"], abs=1e-6)
  # Not trained: the test loss is still the initial one, near log(10).
  assert untrained["test_loss"] == pytest.approx(untrained["initial_loss"], abs=0.05)
  assert untrained["test_accuracy"] < trained["test_accuracy"]


@pytest.mark.slow  # runs the peers in subprocesses
@pytest.mark.parametrize("workload", ["seed_mlp", "mnist_cnn"])
def test_peers_start_from_identical_weights(run_peer, workload):
  """initial_* are measured before the first update, so trained runs serve. jaxlab's
  are taken from the state its training loop starts from."""
  results = {peer: run_peer(peer, workload, epochs=EPOCHS[workload])
             for peer in PEERS if installed(peer)}
  if len(results) < 2:
    pytest.skip(f"Only {list(results)} installed; nothing to compare.")
  reference = results.pop("jaxlab_peer")
  for peer, result in results.items():
    assert result["initial_loss"] == pytest.approx(
        reference["initial_loss"], rel=1e-5), peer
    np.testing.assert_allclose(result["initial_logits"],
                               reference["initial_logits"], rtol=1e-4, atol=1e-5,
                               err_msg=peer)


@pytest.mark.slow  # runs the peers in subprocesses
def test_initial_losses_equal_an_independent_numpy_computation(run_peer, files):
  _, paths = files
  data, init = common.load_npz(paths["data"]), common.load_npz(paths["seed_mlp"])
  n = common.INITIAL_LOSS_EXAMPLES
  expected_loss, logits = numpy_mlp_initial_loss(init, data["x_train"][:n],
                                                 data["y_train"][:n])
  for peer in (p for p in PEERS if installed(p)):
    result = run_peer(peer, "seed_mlp", epochs=EPOCHS["seed_mlp"])
    assert result["initial_loss"] == pytest.approx(expected_loss, rel=1e-5), peer
    np.testing.assert_allclose(result["initial_logits"],
                               logits[:common.INITIAL_LOGITS_EXAMPLES], rtol=1e-4,
                               atol=1e-5, err_msg=peer)


@pytest.mark.slow  # runs the peers in subprocesses
@pytest.mark.parametrize("workload", ["seed_mlp", "mnist_cnn"])
def test_every_peer_takes_the_same_steps(run_peer, workload):
  epochs = EPOCHS[workload]
  steps = {peer: run_peer(peer, workload, epochs=epochs)["steps"]
           for peer in PEERS if installed(peer)}
  assert set(steps.values()) == {epochs * (N_TRAIN // BATCH)}, steps
