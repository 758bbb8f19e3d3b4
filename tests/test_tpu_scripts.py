"""tpu/launch.py and tpu/slurm/jaxlab.sbatch: the commands they print and run.

No network and no real gcloud: dry runs are compared argv by argv, and the
remote shell commands are executed locally in a fake home directory, with
stand-ins for the worker's python3, uv and the venv's python.
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
VENV_PYTHON = "~/jaxlab-venv/bin/python"
PROVISION = (
    "(test -x ~/.local/bin/uv || PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --user "
    "--quiet uv) && (~/jaxlab-venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] "
    "!= (3, 11))' 2>/dev/null || (rm -rf ~/jaxlab-venv && ~/.local/bin/uv venv --python 3.11 "
    "~/jaxlab-venv))")
UV_PIP = "~/.local/bin/uv pip install --python ~/jaxlab-venv/bin/python"
THIS = f"{sys.version_info.major}.{sys.version_info.minor}"  # the fake venv's Python


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

def test_install_makes_a_venv_then_installs_a_checkout_into_it(tmp_path):
  env = {"TMPDIR": str(tmp_path)}
  tarball = str(tmp_path / "jaxlab-src-my-tpu.tar.gz")
  assert dry_run("install", *VM, f"--source={tmp_path}", env=env) == [
      ["tar", "-czf", tarball, "--exclude=.git", "--exclude=__pycache__",
       "--exclude=*.egg-info", "--exclude=.venv", "--exclude=.pytest_cache",
       "-C", str(tmp_path), "."],
      ["gcloud", "compute", "tpus", "tpu-vm", "scp", tarball,
       "my-tpu:jaxlab-src.tar.gz", *SCOPE, "--worker=all"],
      [*SSH, "--worker=all", f"--command={PROVISION}"],
      [*SSH, "--worker=all",
       "--command=rm -rf ~/jaxlab-src && mkdir -p ~/jaxlab-src && "
       "tar -xzf jaxlab-src.tar.gz -C ~/jaxlab-src && cd ~/jaxlab-src && "
       f"{UV_PIP} -e \".[tpu]\""],
  ]


def test_install_defaults_to_this_checkout():
  (tar, _, _, _) = dry_run("install", *VM)
  assert tar[tar.index("-C") + 1] == str(ROOT)


def test_install_tarball_leaves_out_git_and_caches(tmp_path):
  source = tmp_path / "src"
  for name in ["pyproject.toml", "jaxlab/a.py", ".git/config", "jaxlab/__pycache__/a.pyc"]:
    (source / name).parent.mkdir(parents=True, exist_ok=True)
    (source / name).write_text("x")
  (tar, _, _, _) = dry_run("install", *VM, f"--source={source}", env={"TMPDIR": str(tmp_path)})
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
  assert dry_run("install", *VM, f"--source={source}") == [
      [*SSH, "--worker=all", f"--command={PROVISION}"],
      [*SSH, "--worker=all", f"--command={UV_PIP} {requirement}"]]


def test_install_python_version_picks_the_venv_python():
  (provision, _) = dry_run("install", *VM, "--source=jaxlab[tpu]", "--python=3.12")
  assert remote_command(provision) == PROVISION.replace("3, 11", "3, 12").replace(
      "--python 3.11", "--python 3.12")


@pytest.mark.parametrize("version", ["3.10", "python3", "3.11.4", "2.7"])
def test_install_refuses_a_python_jaxlab_does_not_support(version):
  result = launch("install", *VM, f"--python={version}", "--dry-run")
  assert result.returncode == 2
  assert f"--python={version} is not a Python version jaxlab runs on" in result.stderr
  assert "Traceback" not in result.stderr and not result.stdout


@pytest.fixture
def worker(tmp_path):
  """A fake worker: a home directory, and a PATH whose python3 and uv only record calls.

  python3 -m pip install --user uv puts a fake uv in ~/.local/bin; `uv venv DIR` makes
  DIR/bin/python a link to this test's Python (3.11 or later, as jaxlab needs).
  """
  home, bin_dir, calls = tmp_path / "home", tmp_path / "bin", tmp_path / "calls"
  home.mkdir()
  bin_dir.mkdir()
  uv = (f"#!/bin/bash\necho \"uv $*\" >> {calls}\n"
        f"if [[ $1 == venv ]]; then mkdir -p \"$4/bin\" && "
        f"ln -s {sys.executable} \"$4/bin/python\"; fi\n")
  (bin_dir / "python3").write_text(
      f"#!/bin/bash\necho \"python3 $*\" >> {calls}\nmkdir -p ~/.local/bin\n"
      f"printf '%s' {shlex.quote(uv)} > ~/.local/bin/uv && chmod +x ~/.local/bin/uv\n")
  (bin_dir / "python3").chmod(0o755)
  env = {**os.environ, "HOME": str(home), "PATH": f"{bin_dir}:/usr/bin:/bin"}

  def run(command):
    subprocess.run(["bash", "-c", command], env=env, check=True, timeout=30)
    logged = calls.read_text().splitlines() if calls.exists() else []
    calls.unlink(missing_ok=True)
    return logged
  return home, run


def test_install_provisions_uv_and_the_venv_once(worker):
  home, run = worker
  (provision, install) = [remote_command(c) for c in
                          dry_run("install", *VM, "--source=jaxlab[tpu]==0.3", f"--python={THIS}")]
  assert run(provision) == [
      "python3 -m pip install --user --quiet uv",
      f"uv venv --python {THIS} {home}/jaxlab-venv"]
  assert (home / "jaxlab-venv" / "bin" / "python").exists()
  assert run(install) == [f"uv pip install --python {home}/jaxlab-venv/bin/python jaxlab[tpu]==0.3"]
  assert run(provision) == []  # a second install keeps uv and the venv


def test_install_replaces_a_venv_of_another_python(worker):
  home, run = worker
  (provision, _) = [remote_command(c) for c in
                    dry_run("install", *VM, "--source=jaxlab[tpu]", f"--python={THIS}")]
  stale = home / "jaxlab-venv" / "bin" / "python"
  stale.parent.mkdir(parents=True)
  stale.write_text("#!/bin/bash\nexit 1\n")  # answers the version check "no", like a 3.10
  stale.chmod(0o755)
  assert run(provision)[-1] == f"uv venv --python {THIS} {home}/jaxlab-venv"
  assert stale.resolve() == pathlib.Path(sys.executable).resolve()


# --------------------------------------------------------------------- run

RUN = ["run", *VM, "--config=experiments/mnist_cnn.py:smoke", "--workdir=gs://bucket/mnist"]
TRAIN = ["train", "--config=experiments/mnist_cnn.py:smoke", "--workdir=gs://bucket/mnist",
         "--jax_distributed"]
NOT_INSTALLED = ("jaxlab is not installed on this worker (~/jaxlab-venv/bin/python is missing): "
                 "run python tpu/launch.py install first.")


def test_run_starts_training_with_the_venv_python_on_all_workers_in_the_background():
  (command,) = dry_run(*RUN, "--config.optimizer.learning_rate=1e-3")
  assert command[:-1] == [*SSH, "--worker=all"]
  assert shlex.split(remote_command(command)) == [
      "cd", "~/jaxlab-src", "2>/dev/null;",
      "test", "-x", VENV_PYTHON, "||", "{", "echo", NOT_INSTALLED, ">&2;", "exit", "1;", "};",
      "nohup", VENV_PYTHON, "-m", "jaxlab.main", *TRAIN, "--config.optimizer.learning_rate=1e-3",
      ">>", "~/jaxlab-train.log", "2>&1", "<", "/dev/null", "&",
      "echo", "$!", ">", "~/jaxlab-train.pid"]


def _fake_venv_python(home):
  """A stand-in for ~/jaxlab-venv/bin/python: prints its arguments, saves on SIGTERM."""
  fake = home / "jaxlab-venv" / "bin" / "python"
  fake.parent.mkdir(parents=True)
  fake.write_text("#!/bin/bash\ntrap 'echo saved checkpoint; exit 0' TERM\n"
                  "printf '%s\\n' \"$@\"\n"
                  "while true; do sleep 0.02; done\n")
  fake.chmod(0o755)


def test_run_remote_command_trains_then_stop_sends_sigterm(tmp_path):
  """Runs the printed remote commands in a local shell, with a fake venv python."""
  _fake_venv_python(tmp_path)
  shell_env = {**os.environ, "HOME": str(tmp_path)}
  run = remote_command(dry_run(*RUN, TRICKY)[0])
  stop = remote_command(dry_run("stop", *VM)[0])
  log, pid = tmp_path / "jaxlab-train.log", tmp_path / "jaxlab-train.pid"

  subprocess.run(["bash", "-c", run], env=shell_env, check=True, timeout=10)
  try:
    wait_for(lambda: log.exists() and TRICKY in log.read_text())
    assert log.read_text().splitlines() == ["-m", "jaxlab.main", *TRAIN, TRICKY]
    subprocess.run(["bash", "-c", stop], env=shell_env, check=True, timeout=10)
    wait_for(lambda: "saved checkpoint" in log.read_text())
  finally:
    subprocess.run(["bash", "-c", f"kill -9 $(cat {pid}) 2>/dev/null"], check=False)


def test_run_on_a_worker_without_the_venv_says_to_install(tmp_path):
  run = remote_command(dry_run(*RUN)[0])
  result = subprocess.run(["bash", "-c", run], env={**os.environ, "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=10)
  assert result.returncode == 1
  assert result.stderr.strip() == NOT_INSTALLED
  assert not (tmp_path / "jaxlab-train.pid").exists()


def test_stop_leaves_alone_a_process_that_reused_a_stale_pid(tmp_path):
  stop = remote_command(dry_run("stop", *VM)[0])
  bystander = subprocess.Popen(["sleep", "30"])
  try:
    (tmp_path / "jaxlab-train.pid").write_text(f"{bystander.pid}\n")
    result = subprocess.run(["bash", "-c", stop], env={**os.environ, "HOME": str(tmp_path)},
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 0
    assert "no jaxlab training is running" in result.stdout
    assert bystander.poll() is None
  finally:
    bystander.kill()
    bystander.wait()


def test_run_quotes_overrides_for_the_remote_shell():
  (command,) = dry_run(*RUN, TRICKY, "--config.model.name=B/16")
  remote = shlex.split(remote_command(command))
  assert remote[remote.index(">>") - 2:remote.index(">>")] == [TRICKY, "--config.model.name=B/16"]


def test_run_warns_that_a_local_workdir_is_not_shared():
  result = launch("run", *VM, "--config=experiments/mnist_cnn.py", "--workdir=/tmp/mnist",
                  "--dry-run")
  assert result.returncode == 0
  assert "needs a shared gs://" in result.stderr


@pytest.mark.parametrize("extra", ["--lr=0.1", "--config.optimizer.learning_rate"])
def test_run_rejects_arguments_that_are_not_overrides(extra):
  result = launch(*RUN, extra, "--dry-run")
  assert result.returncode == 2
  assert f"unrecognized arguments: {extra}" in result.stderr
  assert "--config.KEY=VALUE" in result.stderr


def test_only_run_takes_overrides():
  result = launch("logs", *VM, "--config.optimizer.learning_rate=1", "--dry-run")
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
      [*SSH, "--worker=all", "--command=pid=$(cat ~/jaxlab-train.pid 2>/dev/null); "
       "if grep -qa jaxlab.main /proc/$pid/cmdline 2>/dev/null; then kill -TERM $pid; "
       "else echo \"no jaxlab training is running on $(hostname)\"; fi"]]


def test_copy_from_a_bucket_needs_no_vm():
  assert dry_run("copy", "--workdir=gs://bucket/mnist", "--dest=results/mnist") == [
      ["gcloud", "storage", "rsync", "--recursive", "gs://bucket/mnist", "results/mnist"]]


def test_copy_a_local_workdir_from_worker_0():
  assert dry_run("copy", *VM, "--workdir=/tmp/mnist", "--dest=results/mnist") == [
      ["gcloud", "compute", "tpus", "tpu-vm", "scp", "my-tpu:/tmp/mnist", "results/mnist",
       *SCOPE, "--worker=0", "--recurse"]]


def test_copy_a_local_workdir_without_the_vm_is_an_error():
  result = launch("copy", "--workdir=/tmp/mnist", "--dest=results/mnist", "--dry-run")
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
    ["copy", "--workdir=gs://bucket/mnist", "--dest=out"],
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

SBATCH_ARGS = ["--config=experiments/cifar10_cnn.py:smoke", "--workdir=/shared/runs/cifar",
               TRICKY, "--config.model.name=B/16"]


def sbatch(*args, dry_run=True, env=None, path=None):
  full_env = {k: v for k, v in os.environ.items()
              if k not in ("DRY_RUN", "SLURM_JOB_ID", "JAXLAB_VENV")}
  full_env.update({"DRY_RUN": "1"} if dry_run else {})
  full_env.update(env or {})
  if path:
    full_env["PATH"] = f"{path}{os.pathsep}{full_env['PATH']}"
  return subprocess.run(["bash", str(SBATCH), *args], env=full_env, capture_output=True,
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


def test_sbatch_says_which_python_it_needs():
  header = [l for l in SBATCH.read_text().splitlines() if l.startswith("#")]
  assert any("Python 3.11 or later" in line for line in header)
  assert any("JAXLAB_VENV" in line for line in header)


@pytest.mark.parametrize("venv_env, python", [
    ({"JAXLAB_VENV": "/shared/venvs/jaxlab"}, "/shared/venvs/jaxlab/bin/python"),
    ({"HOME": "/home/ada"}, "/home/ada/venvs/jaxlab/bin/python"),
])
def test_sbatch_dry_run_prints_srun_of_the_venv_python(venv_env, python):
  result = sbatch(*SBATCH_ARGS, env=venv_env)
  assert result.returncode == 0, result.stderr
  expected = ["srun", "--kill-on-bad-exit=1", python, "-m", "jaxlab.main", "train",
              "--jax_distributed", *SBATCH_ARGS]
  assert result.stdout == shlex.join(expected) + "\n"


@pytest.mark.parametrize("args", [
    ["--workdir=/shared/runs/cifar"],
    ["--config=experiments/cifar10_cnn.py"],
    ["--config=experiments/cifar10_cnn.py", "--workdir="],
    ["--config", "experiments/cifar10_cnn.py", "--workdir", "/shared/runs/cifar"],
])
def test_sbatch_requires_config_and_workdir(args):
  result = sbatch(*args)
  assert result.returncode == 2
  assert "give both --config=experiments/NAME.py and --workdir=DIR" in result.stderr
  assert not result.stdout


@pytest.mark.parametrize("nodes, code", [("1", 0), ("2", 2)])
def test_sbatch_takes_an_s3_workdir_on_one_node_only(nodes, code):
  args = ["--config=experiments/cifar10_cnn.py", "--workdir=s3://my-bucket/runs/cifar"]
  result = sbatch(*args, env={"SLURM_JOB_NUM_NODES": nodes})
  assert result.returncode == code, result.stderr
  if code:
    assert "one-node job only" in result.stderr and "--nodes=1" in result.stderr
  else:
    assert result.stdout.rstrip().endswith(shlex.join(args))


def test_sbatch_outside_a_slurm_job_exits_2():
  result = sbatch("--config=experiments/cifar10_cnn.py", "--workdir=/shared/cifar", dry_run=False)
  assert result.returncode == 2
  assert "not inside a SLURM job" in result.stderr


@pytest.fixture
def fake_srun(tmp_path):
  """An srun on PATH that records its argv and exits 0."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  (bin_dir / "srun").write_text(
      f"#!/bin/bash\nprintf '%s\\n' \"$@\" > {tmp_path / 'srun_argv'}\n")
  (bin_dir / "srun").chmod(0o755)
  return bin_dir, lambda: (tmp_path / "srun_argv").read_text().splitlines()


def _venv(tmp_path, python_script=None):
  """A fake venv whose python is `python_script`; without one, this test's own environment
  (a real venv, or wherever jaxlab is installed), since a link to its interpreter outside
  the venv folder would not see the venv's site-packages."""
  if not python_script:
    return pathlib.Path(sys.prefix)
  venv = tmp_path / "venv"
  (venv / "bin").mkdir(parents=True)
  python = venv / "bin" / "python"
  python.write_text(python_script)
  python.chmod(0o755)
  return venv


def test_sbatch_in_a_job_runs_srun_with_the_venv_python(tmp_path, fake_srun):
  bin_dir, srun_argv = fake_srun
  venv = _venv(tmp_path)
  result = sbatch(*SBATCH_ARGS, dry_run=False, path=bin_dir,
                  env={"SLURM_JOB_ID": "7", "JAXLAB_VENV": str(venv)})
  assert result.returncode == 0, result.stderr
  assert srun_argv() == ["--kill-on-bad-exit=1", str(venv / "bin" / "python"), "-m",
                         "jaxlab.main", "train", "--jax_distributed", *SBATCH_ARGS]


OLD_PYTHON = ("#!/bin/bash\n"  # answers like a Python 3.10
              "case $* in *version_info*) exit 1 ;; *python_version*) echo 3.10.12 ;; esac\n")
NO_JAXLAB = "#!/bin/bash\ncase $* in *find_spec*) exit 1 ;; esac\n"


@pytest.mark.parametrize("python_script, reason", [
    (None, "There is no Python at"),
    (OLD_PYTHON, "is Python 3.10.12."),
    (NO_JAXLAB, "jaxlab is not installed in"),
])
def test_sbatch_in_a_job_refuses_a_venv_that_cannot_run_jaxlab(tmp_path, fake_srun,
                                                               python_script, reason):
  bin_dir, _ = fake_srun
  venv = _venv(tmp_path, python_script) if python_script else tmp_path / "missing"
  result = sbatch(*SBATCH_ARGS, dry_run=False, path=bin_dir,
                  env={"SLURM_JOB_ID": "7", "JAXLAB_VENV": str(venv)})
  assert result.returncode == 2
  assert reason in result.stderr
  assert "jaxlab needs Python 3.11 or later" in result.stderr
  assert not (tmp_path / "srun_argv").exists()
