#!/usr/bin/env python3
"""Train jaxlab on a Cloud TPU VM or multi-host slice, from a laptop with `gcloud`.

  python tpu/launch.py create  --name=my-tpu --zone=us-west4-a --type=v5litepod-16 --spot
  python tpu/launch.py install --name=my-tpu --zone=us-west4-a
  python tpu/launch.py run     --name=my-tpu --zone=us-west4-a \\
      --config=experiments/mnist_cnn.py --workdir=gs://my-bucket/mnist_cnn \\
      --config.data.name=synthetic --config.optimizer.learning_rate=3e-3
  python tpu/launch.py logs    --name=my-tpu --zone=us-west4-a
  python tpu/launch.py stop    --name=my-tpu --zone=us-west4-a
  python tpu/launch.py copy    --workdir=gs://my-bucket/mnist_cnn --dest=results/mnist_cnn
  python tpu/launch.py delete  --name=my-tpu --zone=us-west4-a

`install` gives every worker a virtual environment, ~/jaxlab-venv, with Python 3.11
(jaxlab needs 3.11 or later; the TPU images' own python3 is older) and jaxlab[tpu] in
it; `run` starts training with that environment's python.

Every subcommand takes --dry-run: it prints the commands it would run, one per
line and quoted for a POSIX shell, and runs nothing. Without it, the commands
run in order and the first failure stops the rest.
"""

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

# Software images for JAX, from https://cloud.google.com/tpu/docs/runtimes.
RUNTIME_VERSIONS = {
    "v6e": "v2-alpha-tpuv6e",
    "v5p": "v2-alpha-tpuv5",
    "v5litepod": "v2-alpha-tpuv5-lite",
    "v4": "tpu-ubuntu2204-base",
    "v3": "tpu-ubuntu2204-base",
    "v2": "tpu-ubuntu2204-base",
}

# Where things live on every worker (paths relative to the remote home).
REMOTE_TARBALL = "jaxlab-src.tar.gz"
REMOTE_SRC = "~/jaxlab-src"
REMOTE_LOG = "~/jaxlab-train.log"
REMOTE_PID = "~/jaxlab-train.pid"
REMOTE_UV = "~/.local/bin/uv"
REMOTE_VENV = "~/jaxlab-venv"
REMOTE_PYTHON = f"{REMOTE_VENV}/bin/python"  # every jaxlab process on a worker runs this
MIN_PYTHON = (3, 11)  # jaxlab's requires-python

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAR_EXCLUDES = [f"--exclude={p}" for p in
                (".git", "__pycache__", "*.egg-info", ".venv", ".pytest_cache")]
OVERRIDE = re.compile(r"--config\.[\w.]+=")
FLAG_WITH_VALUE = re.compile(r"(--[\w.-]+=)(.*)", re.DOTALL)

NO_GCLOUD = (
    "gcloud was not found on PATH, so nothing was run. Install the Google "
    "Cloud CLI (https://cloud.google.com/sdk/docs/install), then run "
    "`gcloud auth login` and `gcloud config set project YOUR_PROJECT`, and "
    "rerun this command; or add --dry-run to print the commands without "
    "running them.")


class UsageError(Exception):
  """A mistake in the command line, reported in one paragraph with exit 2."""


class Parser(argparse.ArgumentParser):
  """Argument errors end with an example of a correct command line."""

  def __init__(self, *args, example="", **kwargs):
    super().__init__(*args, **kwargs)
    self.example = example

  def error(self, message):
    hint = f" A complete command looks like:\n  {self.example}" if self.example else ""
    self.exit(2, f"{self.prog}: error: {message}.{hint}\n"
                 f"Add --help to see every option.\n")


# ---------------------------------------------------------------- gcloud argv

def shell_join(argv):
  """Like shlex.join, but writes --flag='a b' rather than '--flag=a b'."""
  def quote(arg):
    flag = FLAG_WITH_VALUE.fullmatch(arg)
    return flag[1] + shlex.quote(flag[2]) if flag else shlex.quote(arg)
  return " ".join(quote(arg) for arg in argv)


def scope(args):
  project = [f"--project={args.project}"] if args.project else []
  return [f"--zone={args.zone}", *project]


def tpu_vm(verb, args, *flags):
  return ["gcloud", "compute", "tpus", "tpu-vm", verb, args.name, *scope(args), *flags]


def ssh(args, command, worker="all"):
  return tpu_vm("ssh", args, f"--worker={worker}", f"--command={command}")


def scp(args, src, dst, worker="all", recurse=False):
  return ["gcloud", "compute", "tpus", "tpu-vm", "scp", src, dst, *scope(args),
          f"--worker={worker}", *(["--recurse"] if recurse else [])]


# ------------------------------------------------------------- subcommands

def default_runtime_version(accelerator_type):
  family = accelerator_type.rsplit("-", 1)[0]
  if family not in RUNTIME_VERSIONS:
    raise UsageError(
        f"There is no default TPU software version for --type={accelerator_type}. "
        f"Pass one with --version=... (list them with `gcloud compute tpus "
        f"tpu-vm versions list --zone=ZONE`), or use a type from the families "
        f"{', '.join(RUNTIME_VERSIONS)}, e.g. --type=v5litepod-16.")
  return RUNTIME_VERSIONS[family]


def create_commands(args):
  version = args.version or default_runtime_version(args.type)
  capacity = ["--spot"] if args.spot else ["--preemptible"] if args.preemptible else []
  return [tpu_vm("create", args, f"--accelerator-type={args.type}",
                 f"--version={version}", *capacity)]


def pip_requirement(source):
  # A bare URL would install jaxlab without the TPU extra, hence without libtpu.
  return f"jaxlab[tpu] @ {source}" if "://" in source and " @ " not in source else source


def python_version(text):
  match = re.fullmatch(r"3\.(\d+)", text)
  if not match or (3, int(match[1])) < MIN_PYTHON:
    raise UsageError(
        f"--python={text} is not a Python version jaxlab runs on: give MAJOR.MINOR, "
        f"at least {'.'.join(map(str, MIN_PYTHON))}, e.g. --python=3.11 (the default).")
  return 3, int(match[1])


def provision_command(args):
  """Makes a venv with Python `args.python` on a worker; does nothing where one exists.

  The TPU VM images ship the Ubuntu release's own python3 (3.10 on 22.04, 3.8 on the
  older 20.04 ones), which jaxlab does not support. uv fetches a standalone CPython
  into the home directory, the same way on every image. Ubuntu's python3.11 package
  would need root and an apt that a fresh VM's unattended upgrades often hold locked
  for minutes, and is missing from 20.04 without a PPA. uv itself comes from PyPI
  through the system pip, which every TPU image has; PIP_BREAK_SYSTEM_PACKAGES lets a
  --user install through on images whose Python is marked externally managed, and
  older pips ignore it.
  """
  version = python_version(args.python)
  return (f"(test -x {REMOTE_UV} || PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install "
          f"--user --quiet uv) && "
          f"({REMOTE_PYTHON} -c 'import sys; sys.exit(sys.version_info[:2] != {version})' "
          f"2>/dev/null || "
          f"(rm -rf {REMOTE_VENV} && {REMOTE_UV} venv --python {args.python} {REMOTE_VENV}))")


def install_commands(args):
  pip = f"{REMOTE_UV} pip install --python {REMOTE_PYTHON}"
  provision = ssh(args, provision_command(args))
  if not os.path.isdir(args.source):
    requirement = shlex.quote(pip_requirement(args.source))
    return [provision, ssh(args, f"{pip} {requirement}")]
  tarball = os.path.join(tempfile.gettempdir(), f"jaxlab-src-{args.name}.tar.gz")
  unpack = (f"rm -rf {REMOTE_SRC} && mkdir -p {REMOTE_SRC} && "
            f"tar -xzf {REMOTE_TARBALL} -C {REMOTE_SRC}")
  return [
      ["tar", "-czf", tarball, *TAR_EXCLUDES, "-C", args.source, "."],
      scp(args, tarball, f"{args.name}:{REMOTE_TARBALL}"),
      provision,
      ssh(args, f"{unpack} && cd {REMOTE_SRC} && {pip} -e \".[tpu]\""),
  ]


def train_argv(args):
  """The arguments of `python -m jaxlab.main` that `run` starts on every worker."""
  return ["train", f"--config={args.config}", f"--workdir={args.workdir}",
          "--jax_distributed", *args.overrides]


NOT_INSTALLED = (f"echo 'jaxlab is not installed on this worker ({REMOTE_PYTHON} is "
                 f"missing): run python tpu/launch.py install first.' >&2; exit 1")


def run_commands(args):
  if not args.workdir.startswith("gs://"):
    print(f"warning: --workdir={args.workdir} is local to each worker; a multi-host "
          f"slice needs a shared gs://BUCKET/PATH to checkpoint and resume.",
          file=sys.stderr)
  # Detached from ssh, so training outlives the connection; relative config
  # paths resolve against the checkout that `install` copied.
  remote = (f"cd {REMOTE_SRC} 2>/dev/null; "
            f"test -x {REMOTE_PYTHON} || {{ {NOT_INSTALLED}; }}; "
            f"nohup {REMOTE_PYTHON} -m jaxlab.main {shell_join(train_argv(args))} "
            f">> {REMOTE_LOG} 2>&1 < /dev/null & echo $! > {REMOTE_PID}")
  return [ssh(args, remote)]


def logs_commands(args):
  return [ssh(args, f"tail -n {args.lines} -F {REMOTE_LOG}", worker=args.worker)]


def stop_commands(args):
  # SIGTERM makes jaxlab save a checkpoint and exit 0. The pid file may be stale and its
  # number reused, so only a process running jaxlab.main gets the signal.
  remote = (f"pid=$(cat {REMOTE_PID} 2>/dev/null); "
            f"if grep -qa jaxlab.main /proc/$pid/cmdline 2>/dev/null; then kill -TERM $pid; "
            f"else echo \"no jaxlab training is running on $(hostname)\"; fi")
  return [ssh(args, remote)]


def copy_commands(args):
  if args.workdir.startswith("gs://"):
    return [["gcloud", "storage", "rsync", "--recursive", args.workdir, args.dest]]
  if not (args.name and args.zone):
    raise UsageError(
        f"--workdir={args.workdir} is a directory on the TPU VM, so copy needs "
        f"--name=TPU and --zone=ZONE to find it (or pass the gs:// workdir).")
  return [scp(args, f"{args.name}:{args.workdir}", args.dest, worker=args.worker,
              recurse=True)]


def delete_commands(args):
  return [tpu_vm("delete", args, "--quiet")]


# ------------------------------------------------------------ command line

EXAMPLE = "python tpu/launch.py {} --name=my-tpu --zone=us-west4-a"
SUBCOMMANDS = {
    "create": ("Create a TPU VM or multi-host slice.", " --type=v5litepod-16 --spot"),
    "install": ("Install jaxlab on every worker.", ""),
    "run": ("Start training on every worker, in the background.",
            " --config=experiments/mnist_cnn.py --workdir=gs://my-bucket/mnist_cnn"),
    "logs": ("Stream the training log of one worker.", ""),
    "stop": ("Send SIGTERM: training saves a checkpoint and exits.", ""),
    "copy": ("Copy the workdir (checkpoints, metrics) to this machine.",
             " --workdir=gs://my-bucket/mnist_cnn --dest=results/mnist_cnn"),
    "delete": ("Delete the TPU VM.", ""),
}


def add_subcommand(subparsers, name):
  description, example = SUBCOMMANDS[name]
  parser = subparsers.add_parser(name, help=description, description=description,
                                 example=EXAMPLE.format(name) + example)
  needs_vm = name != "copy"
  parser.add_argument("--name", required=needs_vm, help="TPU VM name")
  parser.add_argument("--zone", required=needs_vm, help="e.g. us-west4-a")
  parser.add_argument("--project", help="Google Cloud project (default: gcloud's)")
  parser.add_argument("--dry-run", action="store_true",
                      help="print the commands and run nothing")
  parser.set_defaults(commands=globals()[f"{name}_commands"])
  return parser


def build_parser():
  parser = Parser(prog="launch.py", description=__doc__,
                  formatter_class=argparse.RawDescriptionHelpFormatter,
                  example=EXAMPLE.format("create") + SUBCOMMANDS["create"][1])
  subparsers = parser.add_subparsers(dest="subcommand", required=True)
  sub = {name: add_subcommand(subparsers, name) for name in SUBCOMMANDS}

  sub["create"].add_argument("--type", required=True,
                             help="accelerator type, e.g. v5litepod-16, v4-32, v6e-8")
  sub["create"].add_argument("--version", help="TPU software version "
                             "(default: the JAX image for --type)")
  capacity = sub["create"].add_mutually_exclusive_group()
  capacity.add_argument("--spot", action="store_true", help="spot VM (cheaper, may be preempted)")
  capacity.add_argument("--preemptible", action="store_true", help="preemptible VM (legacy)")

  sub["install"].add_argument(
      "--source", default=REPO_ROOT,
      help="a local jaxlab checkout to copy (default: this one), or a pip "
           "requirement or URL, e.g. 'git+https://github.com/ORG/jaxlab'")
  sub["install"].add_argument(
      "--python", default="3.11",
      help=f"Python version of the workers' venv {REMOTE_VENV}, at least 3.11 (uv "
           f"downloads it if the VM lacks it)")

  sub["run"].add_argument("--config", required=True, help="experiments/NAME.py[:ARG]")
  sub["run"].add_argument("--workdir", required=True, help="gs://BUCKET/PATH")
  sub["run"].epilog = "Further --config.KEY=VALUE arguments are passed to jaxlab train."

  sub["logs"].add_argument("--worker", default="0", help="worker index, or 'all'")
  sub["logs"].add_argument("--lines", type=int, default=100, help="lines of history")

  sub["copy"].add_argument("--workdir", required=True, help="gs://... or a path on the VM")
  sub["copy"].add_argument("--dest", required=True, help="local directory")
  sub["copy"].add_argument("--worker", default="0", help="worker to copy a local workdir from")
  return parser, sub


def parse(argv):
  parser, sub = build_parser()
  args, extra = parser.parse_known_args(argv)
  args.overrides = [a for a in extra if OVERRIDE.match(a)]
  unknown = [a for a in extra if not OVERRIDE.match(a)]
  if unknown or (args.overrides and args.subcommand != "run"):
    sub[args.subcommand].error(
        f"unrecognized arguments: {shlex.join(unknown or args.overrides)}; only "
        f"`run` takes config overrides, written as one word each: --config.KEY=VALUE")
  return args


def execute(commands):
  if any(cmd[0] == "gcloud" for cmd in commands) and not shutil.which("gcloud"):
    raise UsageError(NO_GCLOUD)
  for cmd in commands:
    if not shutil.which(cmd[0]):
      raise UsageError(f"{cmd[0]} was not found on PATH; install it and rerun.")
  for cmd in commands:
    print(f"+ {shell_join(cmd)}", file=sys.stderr, flush=True)
    code = subprocess.run(cmd).returncode
    if code != 0:
      sys.exit(f"error: this command failed with exit status {code}, so the "
               f"commands after it were not run:\n  {shell_join(cmd)}")


def main(argv=None):
  args = parse(sys.argv[1:] if argv is None else argv)
  try:
    commands = args.commands(args)
    if args.dry_run:
      print("\n".join(shell_join(cmd) for cmd in commands))
    else:
      execute(commands)
  except UsageError as e:
    print(f"launch.py {args.subcommand}: error: {e}", file=sys.stderr)
    sys.exit(2)
  except KeyboardInterrupt:  # Ctrl-C ends `logs`; no traceback for that.
    sys.exit(130)


if __name__ == "__main__":
  main()
