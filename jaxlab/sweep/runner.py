"""The sweep: an Optuna study whose trials are ordinary jaxlab training runs.

  run(config, config_spec, sweep, workdir, trials, workers, storage_url)

Each trial is `jaxlab.train.loop.run` on the experiment's config with the trial's
values, in its own workdir (<workdir>/trials/<number>); its log goes to train.log there.
Every evaluation the run already makes is reported to the study, and the pruner may
stop the run there (checkpointed, as any stop). `workers` processes each run trials one
after another against the shared study: SQLite under the workdir by default, or any
SQLAlchemy URL, so workers on other machines can join the same study.

Rerunning the same command continues the study: its name comes from the command's files
and its resolved config; finished (complete or pruned) trials count towards --trials; and
a trial whose process was killed (left RUNNING: same host and a dead pid, or, from another
machine, no heartbeat for GRACE_PERIOD_S) or stopped by SIGTERM/Ctrl-C is marked failed
and queued again with the same values, resuming from its own workdir's checkpoint. A
diverged trial fails and is not retried; a rerun tops the finished count up.
"""

import contextlib
import hashlib
import os
import posixpath
import signal
import socket
import sys
import time
import zlib

from jaxlab.runtime import processes
from jaxlab.errors import UserError
from jaxlab.sweep import sqlite_locking
from jaxlab.sweep import storage_url as url_checks
from jaxlab.runtime import messages

HEARTBEAT_S = 30
GRACE_PERIOD_S = 120
TRIALS_DIR = 'trials'
STUDY_DB = 'study.db'
MAX_RETRIES = 3  # times a killed trial is queued again
SCHEMA_ATTEMPTS = 4  # tries to open a storage whose tables another command is creating


def quiet():
  """Optuna's per-trial log lines and experimental-API warnings off: the sweep prints
  one line per trial itself."""
  import warnings
  import optuna
  optuna.logging.set_verbosity(optuna.logging.ERROR)
  warnings.filterwarnings('ignore', category=optuna.exceptions.ExperimentalWarning)


def study_name(config, config_spec, sweep_spec):
  """Stable across reruns and machines: the experiment and sweep files (with args) and a
  digest of the resolved config, so other --config overrides start another study."""
  stem = lambda spec: os.path.splitext(os.path.basename(spec.partition(':')[0]))[0] + (
      f':{spec.partition(":")[2]}' if spec.partition(':')[2] else '')
  digest = hashlib.sha256(config.to_json_best_effort(sort_keys=True).encode()).hexdigest()[:8]
  return f'{stem(config_spec)} / {stem(sweep_spec)} / {digest}'


def default_storage(workdir):
  if '://' in workdir:
    raise UserError(f'--workdir={workdir} is not a local folder, so the study cannot be kept '
                    'in SQLite there; give --storage=URL (e.g. postgresql://user@host/db) or a '
                    'local --workdir.')
  return f'sqlite:///{os.path.abspath(os.path.join(workdir, STUDY_DB))}'


def storage(url):
  """An RDB storage with heartbeats (a killed trial is noticed) and retries of failed
  trials."""
  import optuna
  from sqlalchemy.exc import IntegrityError, ProgrammingError
  url_checks.check(url)
  for attempt in range(SCHEMA_ATTEMPTS):
    try:
      created = optuna.storages.RDBStorage(
          url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_PERIOD_S,
          heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
              max_retry=MAX_RETRIES),
          engine_kwargs={'connect_args': {'timeout': 60}} if url.startswith('sqlite') else None)
      if url.startswith('sqlite'):
        sqlite_locking.lock_transactions_at_begin(created.engine)
      return created
    except (IntegrityError, ProgrammingError) as error:
      # Two commands starting on an empty database both create Optuna's tables; PostgreSQL
      # fails the second (duplicate type or table). The first one's tables then exist.
      if attempt == SCHEMA_ATTEMPTS - 1:
        raise url_checks.unreachable(url, error) from None
      time.sleep(1 + attempt)
    except Exception as error:  # pylint: disable=broad-except
      raise url_checks.unreachable(url, error) from None


def create_study(sweep, name, url, load_only=False, stream=0):
  """The study, with the sweep's sampler seeded for `stream`: workers and reruns draw
  different numbers (one seed everywhere would propose the same values in each)."""
  import numpy as np
  import optuna
  seed = int(np.random.SeedSequence([sweep.seed, stream]).generate_state(1)[0])
  sampler = (optuna.samplers.TPESampler(seed=seed) if sweep.sampler == 'tpe'
             else optuna.samplers.RandomSampler(seed=seed))
  pruner = (optuna.pruners.MedianPruner(n_startup_trials=sweep.startup_trials,
                                        n_warmup_steps=sweep.warmup_steps)
            if sweep.pruner == 'median' else optuna.pruners.NopPruner())
  if load_only:
    return optuna.load_study(study_name=name, storage=storage(url), sampler=sampler,
                             pruner=pruner)
  return optuna.create_study(study_name=name, storage=storage(url), sampler=sampler,
                             pruner=pruner, direction=sweep.direction, load_if_exists=True)


def counted(study):
  """Trials that count towards --trials: finished (complete or pruned)."""
  from optuna.trial import TrialState
  return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def recover(study):
  """Marks this host's trials left RUNNING by a dead process failed and queues them again
  (other machines' are caught by the heartbeat); returns their numbers."""
  import optuna
  from optuna.trial import TrialState
  retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)
  recovered = []
  for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
    host, pid = trial.user_attrs.get('host'), trial.user_attrs.get('pid')
    if host == socket.gethostname() and pid and not processes.alive(pid):
      study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)  # pylint: disable=protected-access
      retry(study, study._storage.get_trial(trial._trial_id))  # pylint: disable=protected-access
      recovered.append(trial.number)
  optuna.storages.fail_stale_trials(study)
  return recovered


def shares(remaining, workers):
  """How many trials each worker runs: `remaining` split as evenly as possible."""
  return [remaining // workers + (i < remaining % workers) for i in range(workers)]


def run(config, config_spec, sweep, sweep_spec, workdir, trials, workers, storage_url=None,
        show_messages=None):
  """Runs the sweep to `trials` finished trials; returns the study (name, url, study).
  `show_messages`, called first in each worker process, shows its messages where the
  caller's go (the command line passes its console's)."""
  import multiprocessing
  quiet()
  sweep.check_keys(config)
  os.makedirs(workdir, exist_ok=True)
  url = storage_url or default_storage(workdir)
  name = study_name(config, config_spec, sweep_spec)
  study = create_study(sweep, name, url)
  if not study.trials:  # a new study: the given first trials run first
    for values in sweep.first_trials:
      study.enqueue_trial({k: space_label(sweep, k, v) for k, v in values.items()},
                          skip_if_exists=True)
  recovered = recover(study)
  if recovered:
    messages.say(f'Queued again the trials a killed sweep left running: {recovered}.')
  remaining = max(0, trials - counted(study))
  messages.say(f'Study {name!r} in {url_checks.shown(url)}: {counted(study)} of {trials} trials '
               f'finished; running {remaining} on {workers} worker(s). Trial logs: '
               f'{workdir}/{TRIALS_DIR}/*/train.log')
  jobs = [share for share in shares(remaining, workers) if share]
  signal.signal(signal.SIGTERM, signal.default_int_handler)  # a preempted sweep, as Ctrl-C
  context = multiprocessing.get_context('spawn')  # JAX does not survive a fork
  # With the worker's index, seeds its sampler. Commands that share a study (--storage, from
  # several machines) must not draw the same values: each mixes in its host and pid.
  # Alone on its workdir's SQLite, a sweep keeps reproducible draws.
  started = len(study.trials)
  salt = zlib.crc32(f'{socket.gethostname()}:{os.getpid()}'.encode()) << 32 if storage_url else 0
  processes = [context.Process(target=worker, args=(config, sweep, name, url, workdir, share,
                                                    salt + started * 1000 + index,
                                                    show_messages))
               for index, share in enumerate(jobs)]
  for process in processes:
    process.start()
  try:
    for process in processes:
      process.join()
  except KeyboardInterrupt:  # Ctrl-C reached the workers too: each checkpoints its trial
    for process in processes:
      process.join()
    raise UserError(f'Interrupted: the running trials saved checkpoints and are queued again. '
                    'Rerun the same command to continue the study.') from None
  failed = [p.exitcode for p in processes if p.exitcode]
  if failed:
    raise UserError(f'{len(failed)} sweep worker(s) failed (exit codes {failed}); see the '
                    f'messages above and the trials\' train.log files in {workdir}/'
                    f'{TRIALS_DIR}. Rerun the same command to continue the study.')
  return name, url, create_study(sweep, name, url, load_only=True)


def space_label(sweep, key, value):
  """A first trial's value as Optuna stores it (tuples by their repr)."""
  from jaxlab.sweep import space
  distribution = sweep.params.get(key)
  return space.Choice.label(value) if isinstance(distribution, space.Choice) else value


def worker(config, sweep, name, url, workdir, n_trials, stream, show_messages=None):
  """One worker process: runs `n_trials` trials of the study one after another."""
  if show_messages is not None:
    show_messages()
  from jaxlab.runtime import setup as runtime
  quiet()
  runtime.setup()
  from jaxlab.train import loop
  study = create_study(sweep, name, url, load_only=True, stream=stream)
  objective = lambda trial: run_trial(trial, config, sweep, workdir)
  try:
    study.optimize(objective, n_trials=n_trials, catch=(loop.TrainingDiverged,))
  except UserError as error:
    messages.warn(f'jaxlab: error: {error}')
    sys.exit(2)


def trial_workdir(workdir, trial):
  import optuna
  frozen = trial.study._storage.get_trial(trial._trial_id)  # pylint: disable=protected-access
  original = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
  return posixpath.join(workdir, TRIALS_DIR, f'{trial.number if original is None else original:04d}')


def trial_values(trial, sweep):
  return {key: distribution.suggest(trial, key) for key, distribution in sweep.params.items()}


def run_trial(trial, config, sweep, workdir):
  """The objective: trains the trial's config, reporting each evaluation to the pruner."""
  import optuna
  from jaxlab.sweep import space
  from jaxlab.train import loop
  started = time.perf_counter()
  trial.set_user_attr('host', socket.gethostname())
  trial.set_user_attr('pid', os.getpid())
  values = trial_values(trial, sweep)
  trial_config = space.apply(config, values)
  trial_config.progress = False  # trials share the terminal: each logs to its train.log
  directory = trial_workdir(workdir, trial)
  trial.set_user_attr('workdir', directory)
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, 'train.log'), 'a') as log, contextlib.redirect_stdout(log):
    summary = loop.run(trial_config, directory, on_eval=_reporter(trial, sweep.metric))
  _record_summary(trial, summary, time.perf_counter() - started)
  shown = ', '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}'
                    for k, v in values.items())
  if summary['status'] == 'stopped':
    messages.say(f'trial {trial.number}: {shown}: pruned at step {summary["step"]}')
    raise optuna.TrialPruned()
  if summary['status'] != 'finished':  # preempted (SIGTERM, Ctrl-C): checkpointed
    frozen = trial.study._storage.get_trial(trial._trial_id)  # pylint: disable=protected-access
    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)(trial.study, frozen)
    raise UserError(f'trial {trial.number} was stopped at step {summary["step"]} '
                    f'({summary["status"]}) and is queued again; rerun the sweep to resume it.')
  value = final_metric(summary, directory, sweep.metric)
  messages.say(f'trial {trial.number}: {shown}: {sweep.metric} {value:.4f}')
  return value


def final_metric(summary, directory, metric):
  """The run's last evaluation of `metric`: from the summary, or, for a trial whose
  training had finished before its sweep was killed, from its metrics records."""
  if summary['eval']:
    return float(summary['eval'][metric.split('/', 1)[1]])
  from jaxlab.workdir import writers
  return float([r for r in writers.read_records(directory) if metric in r][-1][metric])


def _reporter(trial, metric):
  def on_eval(step, scalars):
    if metric not in scalars:
      raise UserError(f'The sweep\'s metric {metric} is not among the run\'s eval metrics '
                      f'({", ".join(sorted(scalars))}); set metric= in the sweep file to one '
                      'of them.')
    trial.report(float(scalars[metric]), step)
    return trial.should_prune()
  return on_eval


def _record_summary(trial, summary, seconds):
  throughput = summary['throughput']
  trial.set_user_attr('seconds', seconds)
  trial.set_user_attr('steps', summary['step'])
  for key in ('device_hours', 'cost_usd', 'examples_per_second'):
    if throughput.get(key) is not None:
      trial.set_user_attr(key, float(throughput[key]))
