"""benchmarks/peers: the shared helpers, and each installed peer end to end.

Peers run as the runner runs them, `python -m benchmarks.peers.<peer>` in a
subprocess, on a small synthetic data set; a peer whose framework is not
installed is skipped.
"""

import functools
import importlib.util
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

from benchmarks.peers import common  # pylint: disable=g-import-not-at-top

# Peer module -> the package it needs.
PEERS = {"flax_loop_peer": "flax", "torch_peer": "torch",
         "keras_peer": "tensorflow"}
N_TRAIN, N_TEST = 2000, 500
CHANCE = 1.0 / common.NUM_CLASSES


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
  """Runs a peer once per distinct argument set, returning its RESULT.json."""
  folder, paths = files

  @functools.cache
  def run(peer, workload, epochs, batch_size=32):
    pytest.importorskip(PEERS[peer])
    out = folder / f"{peer}_{workload}_{epochs}_{batch_size}.json"
    cmd = [sys.executable, "-m", f"benchmarks.peers.{peer}",
           f"--workload={workload}", f"--data={paths['data']}",
           f"--init={paths[workload]}", f"--epochs={epochs}",
           f"--batch_size={batch_size}", f"--out={out}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())

  return run


# ---------------------------------------------------------------------------
# Helpers in common.py.


@pytest.mark.parametrize("workload", sorted(common.WORKLOADS))
def test_make_init_follows_the_documented_layout(workload):
  params = common.make_init(workload, seed=0)
  model = common.get_workload(workload).model
  assert {k: v.shape for k, v in params.items()} == dict(common.PARAM_SHAPES[model])
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


@pytest.mark.parametrize("workload", ["seed_mlp", "mnist_cnn"])
@pytest.mark.parametrize("peer", sorted(PEERS))
def test_peer_trains_well_above_chance(run_peer, peer, workload):
  result = run_peer(peer, workload, epochs=1)
  assert result["status"] == "ok"
  assert (result["workload"], result["epochs"]) == (workload, 1)
  assert result["test_accuracy"] > CHANCE + 0.25
  assert result["final_train_loss"] < result["initial_loss"]


@pytest.mark.parametrize("peer", sorted(PEERS))
def test_peer_reports_timing_and_resources(run_peer, peer):
  result = run_peer(peer, "seed_mlp", epochs=1)
  full_batches = N_TRAIN // 32
  assert result["steps"] in (full_batches, full_batches + 1)
  assert result["train_seconds"] > 0
  assert result["first_epoch_seconds"] <= result["train_seconds"]
  assert result["us_per_step"] == pytest.approx(
      1e6 * result["train_seconds"] / result["steps"])
  assert result["examples_per_second"] == pytest.approx(
      result["examples"] / result["train_seconds"])
  assert result["peak_rss_mb"] > 50
  assert result["versions"]


@pytest.mark.parametrize("peer", sorted(PEERS))
def test_epochs_zero_only_evaluates(run_peer, peer):
  untrained = run_peer(peer, "seed_mlp", epochs=0)
  trained = run_peer(peer, "seed_mlp", epochs=1)
  assert untrained["steps"] == 0
  assert untrained["initial_loss"] == pytest.approx(trained["initial_loss"], abs=1e-6)
  # Not trained: the test loss is still the initial one, near log(10).
  assert untrained["test_loss"] == pytest.approx(untrained["initial_loss"], abs=0.05)
  assert untrained["test_accuracy"] < trained["test_accuracy"]


@pytest.mark.parametrize("workload", ["seed_mlp", "mnist_cnn"])
def test_peers_start_from_identical_weights(run_peer, workload):
  """initial_* are measured before the first update, so 1-epoch runs serve."""
  results = {}
  for peer in PEERS:
    if importlib.util.find_spec(PEERS[peer]) is not None:
      results[peer] = run_peer(peer, workload, epochs=1)
  if len(results) < 2:
    pytest.skip(f"Only {list(results)} installed; nothing to compare.")
  reference = results.pop("flax_loop_peer")
  for peer, result in results.items():
    assert result["initial_loss"] == pytest.approx(
        reference["initial_loss"], abs=1e-5), peer
    np.testing.assert_allclose(result["initial_logits"],
                               reference["initial_logits"], atol=1e-5,
                               err_msg=peer)
