"""`python -m jaxlab.main ARGS` in a new process whose libraries are already imported.

Why: a CLI process spends about 2 s of CPU importing JAX, Flax, Optax, Orbax and
matplotlib before it reads its first flag, and the suite starts a few hundred of them on
two cores. multiprocessing's forkserver imports those libraries once (the preload below)
and forks every run from that process. The child is still a new process: its own
arguments, environment, working directory, stdout and stderr (files), exit code and
exit handlers; jaxlab itself is imported in the child, and JAX's backend starts there.

What a fork cannot give is a different import-time environment, so a run whose
environment changes what those imports read (JAX_* or PYTHON* variables) gets a real
interpreter (`subprocess.run`), as does everything where the CLI's fresh start is the
point of the test (those tests start their processes themselves).
"""

import atexit
import faulthandler
import multiprocessing
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import threading

# Libraries whose import is most of a CLI process's start, none of which starts a thread
# or a JAX backend when imported (a fork must not copy either).
PRELOAD = ('numpy', 'jax', 'jax.numpy', 'flax.nnx', 'optax', 'orbax.checkpoint', 'grain',
           'ml_collections', 'absl.flags', 'absl.logging', 'matplotlib.pyplot', 'PIL.Image',
           'tensorflow_datasets',
           'tensorboard.summary.writer.event_file_writer')
# Variables read while those libraries import: a child with other values needs a real start.
IMPORT_TIME_PREFIXES = ('JAX_', 'PYTHON', 'LD_', 'TF_', 'MPL', 'OMP_', 'OPENBLAS_')

_CONTEXT = None


def run(argv, *, cwd, env, timeout):
  """subprocess.run([python, -m, jaxlab.main, *argv], capture_output=True, text=True)'s
  CompletedProcess, from a forked child where the environment allows."""
  command = [sys.executable, '-m', 'jaxlab.main', *argv]
  if not _forkable(env):
    return _run_interpreter(command, cwd, env, timeout)
  with tempfile.TemporaryDirectory(prefix='jaxlab-cli-') as outputs:
    stdout, stderr = os.path.join(outputs, 'stdout'), os.path.join(outputs, 'stderr')
    child = _context().Process(target=_main, args=(list(argv), str(cwd), dict(env), stdout,
                                                   stderr))
    child.start()
    child.join(timeout)
    if child.exitcode is None:
      os.kill(child.pid, signal.SIGABRT)  # faulthandler (_main): every thread's stack
      child.join(30)
      child.kill()
      child.join()
      raise HungProcess(command, timeout, _read(stdout), _read(stderr))
    return subprocess.CompletedProcess(command, child.exitcode, _read(stdout), _read(stderr))


class HungProcess(subprocess.TimeoutExpired):
  """A CLI process that outlived its timeout; the message ends with the stacks of its
  threads at that moment (faulthandler's dump on SIGABRT), so a hang explains itself."""

  def __str__(self):
    return f'{super().__str__()}; its stderr ends:\n{(self.stderr or "")[-6000:]}'


def _run_interpreter(command, cwd, env, timeout):
  """subprocess.run(command, capture_output=True, text=True, timeout=timeout), with the
  stacks of a hung process's threads in the HungProcess it raises."""
  command = [command[0], '-X', 'faulthandler', *command[1:]]
  with subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True) as process:
    try:
      stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
      process.send_signal(signal.SIGABRT)
      try:
        stdout, stderr = process.communicate(timeout=30)
      except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
      raise HungProcess(command, timeout, stdout, stderr) from None
  return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _forkable(env):
  changed = {k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k)}
  return not any(k.startswith(IMPORT_TIME_PREFIXES) for k in changed)


def _context():
  global _CONTEXT
  if _CONTEXT is None:
    _CONTEXT = multiprocessing.get_context('forkserver')
    _CONTEXT.set_forkserver_preload(list(PRELOAD))
  return _CONTEXT


def _read(path):
  if not os.path.exists(path):  # the child failed before it redirected its output
    return ''
  with open(path, encoding='utf-8', errors='replace') as f:
    return f.read()


def _main(argv, cwd, env, stdout, stderr):
  """The child: `python -m jaxlab.main ARGV` as the interpreter would run it, then the
  interpreter's own shutdown (threads joined, exit handlers run, streams flushed)."""
  os.chdir(cwd)
  os.environ.clear()
  os.environ.update(env)
  for fd, path in ((1, stdout), (2, stderr)):
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(target, fd)
    os.close(target)
  sys.stdout = open(1, 'w', encoding='utf-8', closefd=False)
  sys.stderr = open(2, 'w', encoding='utf-8', errors='backslashreplace', closefd=False,
                    buffering=1)
  sys.stdin = open(os.devnull, encoding='utf-8')
  faulthandler.enable(all_threads=True)  # SIGABRT on a timeout: the stacks to stderr
  sys.argv = ['-m', *argv]
  sys.path[0] = cwd  # as `python -m` puts the working directory first
  code = _exit_code(lambda: runpy.run_module('jaxlab.main', run_name='__main__', alter_sys=True))
  threading._shutdown()  # pylint: disable=protected-access
  atexit._run_exitfuncs()  # pylint: disable=protected-access
  for stream in (sys.stdout, sys.stderr):
    stream.flush()
  os._exit(code)  # pylint: disable=protected-access


def _exit_code(main):
  try:
    main()
  except SystemExit as exit_:
    if exit_.code is None or isinstance(exit_.code, int):
      return exit_.code or 0
    print(exit_.code, file=sys.stderr)
    return 1
  except BaseException:  # pylint: disable=broad-except
    import traceback
    traceback.print_exc()
    return 1
  return 0
