"""tpu/launch.py and tpu/slurm/jaxlab.sbatch: the commands they print and run.

No network and no real gcloud: dry runs are compared argv by argv, and the
remote shell commands are executed locally with a stand-in `jaxlab`.
"""

import json
import os
import pathlib
import shlex
import subprocess
import sys
import tarfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "tpu" / "launch.py"
SBATCH = ROOT / "tpu" / "slurm" / "jaxlab.sbatch"
VM = ["--name=my-tpu", "--zone=us-west4-a"]
SCOPE = ["--zone=us-west4-a"]
SSH = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "my-tpu", *SCOPE]
SUBCOMMANDS = ["create", "install", "run", "logs", "stop", "copy", "delete"]
TRICKY = "--config.data.name=it's a \"name\" $HOME"


def launch(*args, path="", env=None):
  """Runs launch.py with only `path` on PATH, so no gcloud unless a test adds one."""
  env = {**os.environ, "PATH": path, **(env or {})}
  return subprocess.run([sys.executable, str(LAUNCH), *args], env=env,
                        capture_output=True, text=True, timeout=30)


def dry_run(*args, env=None):
  result = launch(*args, "--dry-run", env=env)
  assert result.returncode == 0, result.stderr
  return [shlex.split(line) for line in result.stdout.splitlines()]


def remote_command(ssh_argv):
  (command,) = [a for a in ssh_argv if a.startswith("--command=")]
  return command.removeprefix("--command=")


def wait_for(predicate, seconds=10):
  deadline = time.monotonic() + seconds
  while not predicate():
    assert time.monotonic() < deadline, "timed out"
    time.sleep(0.02)


# ------------------------------------------------------------------ create

def test_create_multihost_spot_slice():
  assert dry_run("create", *VM, "--type=v5litepod-16", "--spot") == [[
      "gcloud", "compute", "tpus", "tpu-vm", "create", "my-tpu", *SCOPE,
      "--accelerator-type=v5litepod-16", "--version=v2-alpha-tpuv5-lite", "--spot"]]


@pytest.mark.parametrize("accelerator, version", [
    ("v6e-8", "v2-alpha-tpuv6e"),
    ("v5p-16", "v2-alpha-tpuv5"),
    ("v5litepod-8", "v2-alpha-tpuv5-lite"),
    ("v4-32", "tpu-ubuntu2204-base"),
])
def test_create_picks_the_jax_runtime_for_the_type(accelerator, version):
  (command,) = dry_run("create", *VM, f"--type={accelerator}")
  assert command[-2:] == [f"--accelerator-type={accelerator}", f"--version={version}"]


def test_create_preemptible_with_project_and_version_override():
  assert dry_run("create", *VM, "--project=lab", "--type=v4-8",
                 "--version=tpu-vm-base", "--preemptible") == [[
      "gcloud", "compute", "tpus", "tpu-vm", "create", "my-tpu", *SCOPE,
      "--project=lab", "--accelerator-type=v4-8", "--version=tpu-vm-base",
      "--preemptible"]]


def test_create_refuses_spot_and_preemptible_together():
  result = launch("create", *VM, "--type=v4-8", "--spot", "--preemptible", "--dry-run")
  assert result.returncode == 2
  assert "--preemptible: not allowed with argument --spot" in result.stderr


def test_create_unknown_type_asks_for_version():
  result = launch("create", *VM, "--type=v9x-8", "--dry-run")
  assert result.returncode == 2
  assert "Pass one with --version=" in result.stderr
  assert "Traceback" not in result.stderr


# ----------------------------------------------------------------- install

def test_install_copies_a_checkout_to_all_workers(tmp_path):
  env = {"TMPDIR": str(tmp_path)}
  tarball = str(tmp_path / "jaxlab-src-my-tpu.tar.gz")
  assert dry_run("install", *VM, f"--source={tmp_path}", env=env) == [
      ["tar", "-czf", tarball, "--exclude=.git", "--exclude=__pycache__",
       "--exclude=*.egg-info", "--exclude=.venv", "--exclude=.pytest_cache",
       "-C", str(tmp_path), "."],
      ["gcloud", "compute", "tpus", "tpu-vm", "scp", tarball,
       "my-tpu:jaxlab-src.tar.gz", *SCOPE, "--worker=all"],
      [*SSH, "--worker=all",
       "--command=rm -rf ~/jaxlab-src && mkdir -p ~/jaxlab-src && "
       "tar -xzf jaxlab-src.tar.gz -C ~/jaxlab-src && cd ~/jaxlab-src && "
       "python3 -m pip install -U pip && python3 -m pip install -e \".[tpu]\""],
  ]


def test_install_defaults_to_this_checkout():
  (tar, _, _) = dry_run("install", *VM)
  assert tar[tar.index("-C") + 1] == str(ROOT)


def test_install_tarball_leaves_out_git_and_caches(tmp_path):
  source = tmp_path / "src"
  for name in ["pyproject.toml", "jaxlab/a.py", ".git/config", "jaxlab/__pycache__/a.pyc"]:
    (source / name).parent.mkdir(parents=True, exist_ok=True)
    (source / name).write_text("x")
  (tar, _, _) = dry_run("install", *VM, f"--source={source}", env={"TMPDIR": str(tmp_path)})
  subprocess.run(tar, check=True)
  with tarfile.open(tar[2]) as archive:
    names = {os.path.normpath(n) for n in archive.getnames()}
  assert {"pyproject.toml", "jaxlab/a.py"} <= names
  assert not {n for n in names if ".git" in n or "__pycache__" in n}


@pytest.mark.parametrize("source, requirement", [
    ("git+https://github.com/org/jaxlab@v1", "'jaxlab[tpu] @ git+https://github.com/org/jaxlab@v1'"),
    ("jaxlab[tpu]==0.3", "'jaxlab[tpu]==0.3'"),
])
def test_install_from_pip_keeps_the_tpu_extra(source, requirement):
  assert dry_run("install", *VM, f"--source={source}", "--python=python3.11") == [[
      *SSH, "--worker=all", "--command=python3.11 -m pip install -U pip && "
      f"python3.11 -m pip install {requirement}"]]


# --------------------------------------------------------------------- run

RUN = ["run", *VM, "--config=experiments/vit.py:smoke", "--workdir=gs://bucket/vit"]
TRAIN = ["jaxlab", "train", "--config=experiments/vit.py:smoke",
         "--workdir=gs://bucket/vit", "--jax_distributed"]


def test_run_starts_training_on_all_workers_in_the_background():
  (command,) = dry_run(*RUN, "--config.optimizer.lr=1e-3")
  assert command[:-1] == [*SSH, "--worker=all"]
  remote = shlex.split(remote_command(command))
  start, end = remote.index("nohup") + 1, remote.index(">>")
  assert remote[start:end] == [*TRAIN, "--config.optimizer.lr=1e-3"]
  assert remote[end:] == [">>", "~/jaxlab-train.log", "2>&1", "<", "/dev/null", "&",
                          "echo", "$!", ">", "~/jaxlab-train.pid"]


def test_run_remote_command_trains_then_stop_sends_sigterm(tmp_path):
  """Runs the printed remote commands in a local shell, with a fake jaxlab."""
  fake = tmp_path / ".local" / "bin" / "jaxlab"
  fake.parent.mkdir(parents=True)
  fake.write_text("#!/bin/bash\ntrap 'echo saved checkpoint; exit 0' TERM\n"
                  "printf '%s\\n' \"$@\"\n"
                  "while true; do sleep 0.02; done\n")
  fake.chmod(0o755)
  shell_env = {**os.environ, "HOME": str(tmp_path)}
  run = remote_command(dry_run(*RUN, TRICKY)[0])
  stop = remote_command(dry_run("stop", *VM)[0])
  log, pid = tmp_path / "jaxlab-train.log", tmp_path / "jaxlab-train.pid"

  subprocess.run(["bash", "-c", run], env=shell_env, check=True, timeout=10)
  try:
    wait_for(lambda: log.exists() and TRICKY in log.read_text())
    assert log.read_text().splitlines() == [*TRAIN[1:], TRICKY]
    subprocess.run(["bash", "-c", stop], env=shell_env, check=True, timeout=10)
    wait_for(lambda: "saved checkpoint" in log.read_text())
  finally:
    subprocess.run(["bash", "-c", f"kill -9 $(cat {pid}) 2>/dev/null"], check=False)


def test_run_quotes_overrides_for_the_remote_shell():
  (command,) = dry_run(*RUN, TRICKY, "--config.model.name=B/16")
  remote = shlex.split(remote_command(command))
  assert remote[remote.index(">>") - 2:remote.index(">>")] == [TRICKY, "--config.model.name=B/16"]


def test_run_warns_that_a_local_workdir_is_not_shared():
  result = launch("run", *VM, "--config=experiments/vit.py", "--workdir=/tmp/vit", "--dry-run")
  assert result.returncode == 0
  assert "needs a shared gs://" in result.stderr


@pytest.mark.parametrize("extra", ["--lr=0.1", "--config.optimizer.lr"])
def test_run_rejects_arguments_that_are_not_overrides(extra):
  result = launch(*RUN, extra, "--dry-run")
  assert result.returncode == 2
  assert f"unrecognized arguments: {extra}" in result.stderr
  assert "--config.KEY=VALUE" in result.stderr


def test_only_run_takes_overrides():
  result = launch("logs", *VM, "--config.optimizer.lr=1", "--dry-run")
  assert result.returncode == 2
  assert "only `run` takes config overrides" in result.stderr


# ---------------------------------------------------- logs, stop, copy, delete

def test_logs_follows_worker_0_by_default():
  assert dry_run("logs", *VM) == [
      [*SSH, "--worker=0", "--command=tail -n 100 -F ~/jaxlab-train.log"]]
  assert dry_run("logs", *VM, "--worker=all", "--lines=5") == [
      [*SSH, "--worker=all", "--command=tail -n 5 -F ~/jaxlab-train.log"]]


def test_stop_sends_sigterm_on_all_workers():
  assert dry_run("stop", *VM) == [
      [*SSH, "--worker=all", "--command=kill -TERM $(cat ~/jaxlab-train.pid)"]]


def test_copy_from_a_bucket_needs_no_vm():
  assert dry_run("copy", "--workdir=gs://bucket/vit", "--dest=results/vit") == [
      ["gcloud", "storage", "rsync", "--recursive", "gs://bucket/vit", "results/vit"]]


def test_copy_a_local_workdir_from_worker_0():
  assert dry_run("copy", *VM, "--workdir=/tmp/vit", "--dest=results/vit") == [
      ["gcloud", "compute", "tpus", "tpu-vm", "scp", "my-tpu:/tmp/vit", "results/vit",
       *SCOPE, "--worker=0", "--recurse"]]


def test_copy_a_local_workdir_without_the_vm_is_an_error():
  result = launch("copy", "--workdir=/tmp/vit", "--dest=results/vit", "--dry-run")
  assert result.returncode == 2
  assert "needs --name=TPU and --zone=ZONE" in result.stderr


def test_delete_does_not_prompt():
  assert dry_run("delete", *VM) == [
      ["gcloud", "compute", "tpus", "tpu-vm", "delete", "my-tpu", *SCOPE, "--quiet"]]


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
def test_missing_arguments_exit_2_with_an_example(subcommand):
  result = launch(subcommand, "--dry-run")
  assert result.returncode == 2
  assert "the following arguments are required" in result.stderr
  assert f"python tpu/launch.py {subcommand} --name=my-tpu --zone=" in result.stderr
  assert "Traceback" not in result.stderr


def test_no_subcommand_exits_2():
  result = launch()
  assert result.returncode == 2
  assert "required: subcommand" in result.stderr


@pytest.mark.parametrize("argv", [
    ["create", *VM, "--type=v5litepod-16"],
    ["install", *VM],
    [*RUN],
    ["logs", *VM],
    ["stop", *VM],
    ["copy", "--workdir=gs://bucket/vit", "--dest=out"],
    ["delete", *VM],
])
def test_without_gcloud_nothing_runs_and_exit_is_2(argv, tmp_path):
  result = launch(*argv, env={"TMPDIR": str(tmp_path)})
  assert result.returncode == 2
  assert "gcloud was not found on PATH" in result.stderr
  assert "https://cloud.google.com/sdk/docs/install" in result.stderr
  assert "Traceback" not in result.stderr
  assert not list(tmp_path.iterdir())  # not even the tarball


@pytest.fixture
def fake_gcloud(tmp_path):
  """A gcloud on PATH that records its argv and fails on `scp`."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  (bin_dir / "gcloud").write_text(
      f"#!{sys.executable}\nimport json, sys\n"
      f"open({str(tmp_path / 'calls')!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
      "sys.exit(1 if 'scp' in sys.argv and 'FAIL_SCP' in __import__('os').environ else 0)\n")
  (bin_dir / "gcloud").chmod(0o755)
  path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
  calls = lambda: [json.loads(l) for l in (tmp_path / "calls").read_text().splitlines()]
  return path, calls


def test_runs_the_dry_run_commands_in_order(fake_gcloud, tmp_path):
  path, calls = fake_gcloud
  argv = ["install", *VM, f"--source={ROOT / 'tpu'}"]
  env = {"TMPDIR": str(tmp_path)}
  planned = dry_run(*argv, env=env)
  result = launch(*argv, path=path, env=env)
  assert result.returncode == 0, result.stderr
  assert [["gcloud", *call] for call in calls()] == planned[1:]
  assert (tmp_path / "jaxlab-src-my-tpu.tar.gz").exists()  # the tar step ran


def test_stops_at_the_first_failing_command(fake_gcloud, tmp_path):
  path, calls = fake_gcloud
  result = launch("install", *VM, f"--source={ROOT / 'tpu'}", path=path,
                  env={"TMPDIR": str(tmp_path), "FAIL_SCP": "1"})
  assert result.returncode == 1
  assert "failed with exit status 1, so the commands after it were not run" in result.stderr
  assert [call[3] for call in calls()] == ["scp"]  # the ssh/pip step never ran


# ------------------------------------------------------------------- SLURM

def sbatch(*args, dry_run=True):
  env = {k: v for k, v in os.environ.items() if k not in ("DRY_RUN", "SLURM_JOB_ID")}
  env.update({"DRY_RUN": "1"} if dry_run else {})
  return subprocess.run(["bash", str(SBATCH), *args], env=env, capture_output=True,
                        text=True, timeout=30)


def test_sbatch_directives_start_one_task_per_node_with_gpus():
  lines = SBATCH.read_text().splitlines()
  first_command = next(i for i, l in enumerate(lines) if l.strip() and not l.startswith("#"))
  directives = [l for l in lines if l.startswith("#SBATCH")]
  # sbatch ignores #SBATCH lines after the first command.
  assert all(lines.index(d) < first_command for d in directives)
  assert "#SBATCH --ntasks-per-node=1" in directives
  assert any(d.startswith("#SBATCH --nodes=") for d in directives)
  assert any(d.startswith("#SBATCH --gpus-per-node=") for d in directives)
  assert "#SBATCH --signal=TERM@120" in directives


def test_sbatch_dry_run_prints_the_srun_command():
  args = ["--config=experiments/vit.py:smoke", "--workdir=/shared/runs/vit",
          TRICKY, "--config.model.name=B/16"]
  result = sbatch(*args)
  assert result.returncode == 0, result.stderr
  expected = ["srun", "--kill-on-bad-exit=1", "jaxlab", "train", "--jax_distributed", *args]
  assert result.stdout == shlex.join(expected) + "\n"


@pytest.mark.parametrize("args", [
    ["--workdir=/shared/runs/vit"],
    ["--config=experiments/vit.py"],
    ["--config=experiments/vit.py", "--workdir="],
    ["--config", "experiments/vit.py", "--workdir", "/shared/runs/vit"],
])
def test_sbatch_requires_config_and_workdir(args):
  result = sbatch(*args)
  assert result.returncode == 2
  assert "give both --config=experiments/NAME.py and --workdir=DIR" in result.stderr
  assert not result.stdout


def test_sbatch_outside_a_slurm_job_exits_2():
  result = sbatch("--config=experiments/vit.py", "--workdir=/shared/vit", dry_run=False)
  assert result.returncode == 2
  assert "not inside a SLURM job" in result.stderr
