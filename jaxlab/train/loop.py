"""`run(config, workdir)`: restore -> for each block: step -> log -> evaluate -> checkpoint.

Training proceeds in blocks of `steps_per_loop` steps (one compiled call each),
aligned to multiples of `steps_per_loop` from step 0, so a resumed run replays
exactly the computations of an uninterrupted one. Logging, evaluation and
checkpoints happen at block ends.
"""

import dataclasses
import time

import jax
import numpy as np

from jaxlab import config as config_lib
from jaxlab import storage
from jaxlab.workdir import lock as workdir_lock
from jaxlab.data import bad_records, sources
from jaxlab.errors import UserError
from jaxlab.train import preemption
from jaxlab.perf import mfu
from jaxlab.train.session import Session


class TrainingDiverged(RuntimeError):
  """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclasses.dataclass
class Window:
  """Per-step train metrics since the last log record."""
  start_step: int
  start_time: float = dataclasses.field(default_factory=time.perf_counter)
  parts: list = dataclasses.field(default_factory=list)

  def summary(self, end_step, batch_size, now, meter):
    stacked = {k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]}
    steps_per_second = (end_step - self.start_step) / max(now - self.start_time, 1e-9)
    scalars = {f'train/{k}': float(v.mean()) for k, v in stacked.items() if k != 'learning_rate'}
    scalars['train/learning_rate'] = float(stacked['learning_rate'][-1])
    scalars['train/steps_per_second'] = steps_per_second
    scalars['train/examples_per_second'] = steps_per_second * batch_size
    scalars.update(meter.scalars(steps_per_second))
    return scalars


def log_points(every, start, end, num_steps):
  """Steps in (start, end] at which a train record is written."""
  points = list(range((start // every + 1) * every, end + 1, every)) if every else []
  if end == num_steps and end not in points:
    points.append(end)
  return points


def crossed(every, start, end):
  """True if a multiple of `every` lies in (start, end]."""
  return bool(every) and end // every > start // every


def run(config, workdir, init_params=None, on_eval=None):
  """Trains (or resumes) the experiment; returns a summary dict with the final state.

  `init_params` (a pure dict shaped like the model's parameters) replaces the random
  initialisation of a fresh run, e.g. to start from pretrained or shared weights.
  `on_eval(step, scalars)` sees every evaluation's record ({'eval/accuracy': ...});
  returning True stops the run there, checkpointed, with status 'stopped' (a sweep's
  pruner uses it).
  The workdir is locked for the whole run: a second run on it fails with UserError.
  """
  config_lib.validate(config)
  workdir = storage.absolute(workdir)
  with workdir_lock.hold(workdir):
    return _run(config, workdir, init_params, on_eval)


def _run(config, workdir, init_params, on_eval):
  session = Session.create(config, workdir, init_params)
  try:
    summary = _run_session(session, workdir, on_eval)
  except BaseException as error:
    session.tracker.finish('preempted' if isinstance(error, KeyboardInterrupt) else 'failed')
    raise
  finally:
    session.input.close()  # stops a stream's background reading, also on errors
  session.tracker.finish(summary['status'], summary['eval'])  # waits a bounded time
  return summary


def _run_session(session, workdir, on_eval):
  if session.start_step >= session.num_steps:
    session.log(f'Training already finished at step {session.start_step} in {workdir}; '
                'nothing to do. Use `jaxlab eval` or `jaxlab predict` on it.')
    return session.summary(status='finished')
  timings = session.timings
  before, started = dict(timings), time.perf_counter()
  with preemption.watch() as stop:
    status = _train(session, stop, on_eval)
  waited = time.perf_counter()
  session.checkpointer.wait()  # the last asynchronous save
  timings['save'] += time.perf_counter() - waited
  # The steps alone: the loop's time less what it spent compiling, evaluating and saving.
  timings['train'] = time.perf_counter() - started - sum(
      timings[k] - before[k] for k in ('compile', 'eval', 'save'))
  finishing = time.perf_counter()
  session.finish()
  timings['finish'] = time.perf_counter() - finishing
  summary = session.summary(status=status)
  _log_throughput(session, summary)
  return summary


def _log_throughput(session, summary):
  trained, seconds = summary['step'] - session.start_step, session.timings['train']
  if trained <= 0 or seconds <= 0:
    return
  meter = session.meter
  session.log(f'Trained {trained} steps in {_seconds(seconds)} of training steps '
              f'({trained / seconds:.4g} steps/s, {meter.describe(trained / seconds)}).')
  session.log(f'The whole run took {_breakdown(session.timings)}.')
  session.log(f'Model FLOPs per step: {meter.flops_per_step:.4g} ({meter.flops_source}); '
              f'peak: {meter.peak.source}.')
  throughput = summary['throughput']
  session.log(f'Model FLOPs per run: {throughput["model_flops"]:.4g}; '
              f'{throughput["examples_per_second"]:.4g} examples/s; cost: '
              f'{mfu.describe_cost(throughput)}.')


def _seconds(value):
  return f'{value:.3g} s'


def _breakdown(timings):
  """'9.1 s: 5.2 s setting up, 3.1 s compiling, ...'."""
  words = dict(setup='setting up', compile='compiling', train='training steps',
               eval='evaluating', save='saving checkpoints', finish='writing plots and closing')
  parts = ', '.join(f'{_seconds(timings[k])} {w}' for k, w in words.items() if k in timings)
  return f'{_seconds(sum(timings.values()))}: {parts}'


def _train(session, stop, on_eval):
  config, step = session.config, session.start_step
  session.precompile()  # so that no compilation lands inside a timed window
  window = Window(start_step=step)
  pending = []  # (end_step, device metrics) dispatched but not yet read
  while step < session.num_steps:
    end = session.block_end(step)
    try:
      session.state, metrics = session.run_block(step, end)
    except (sources.BadRecord, bad_records.TooManyBadRecords) as error:
      _stop_on_bad_records(session, step, pending, window, error)
    pending.append((step, end, metrics))
    stop_now = stop.requested(end)  # collective: called once per block on every process
    evaluate_now = crossed(config.eval_every_steps, step, end) or end == session.num_steps
    save_now = (crossed(config.checkpoint_every_steps, step, end) or end == session.num_steps
                or stop_now)
    needs_state = evaluate_now or save_now
    # On accelerators, read the previous block's metrics while this one runs. On CPU the
    # "device" shares the host's cores: overlapping only adds contention, so read at once.
    while len(pending) > (0 if needs_state or session.host_is_device else 1):
      window = _consume(session, window, *pending.pop(0))
    paused = time.perf_counter()
    eval_metrics = session.evaluate(end) if evaluate_now else None
    stop_early = bool(eval_metrics and on_eval and on_eval(end, eval_metrics))
    if save_now or stop_early:
      session.save(end, eval_metrics)
    window.start_time += time.perf_counter() - paused  # steps/s counts training, not eval or saves
    step = end
    if stop_now and step < session.num_steps:
      session.checkpointer.wait()
      session.log(f'Stopped by {stop.signal_name} at step {step}: checkpoint saved in '
                  f'{session.workdir}; rerun the same command to resume.', always=True)
      return 'preempted'
    if stop_early and step < session.num_steps:
      return 'stopped'
  return 'finished'


def _stop_on_bad_records(session, step, pending, window, error):
  """A bad record with data.skip_bad_records=False, or more bad records than
  data.max_bad_records_fraction allows: keep the work done (a checkpoint at `step`, the
  last step trained), then stop naming the record(s)."""
  for item in pending:
    window = _consume(session, window, *item)
  pending.clear()
  if step > session.start_step and step not in session.checkpointer.all_steps():
    session.save(step, None)
    session.checkpointer.wait()
  if isinstance(error, sources.BadRecord):
    fix = ('Fix or remove the record, or set --config.data.skip_bad_records=True to skip and '
           'count such records.')
  else:
    fix = ('Repair the data (or check that it is the data set you meant), or raise '
           '--config.data.max_bad_records_fraction (1: never stop).')
  raise UserError(
      f'Stopped at step {step}: {error}. The work so far is saved in {session.workdir} (step '
      f'{session.checkpointer.latest_step() or 0}). {fix}') from None


def _consume(session, window, start, end, metrics):
  """Reads a block's metrics, stops on a non-finite loss, and writes the train
  records that fall inside the block (logging is per step, not per block)."""
  metrics = jax.device_get(metrics)
  losses = metrics['loss']
  if not np.all(np.isfinite(losses)):
    bad_step = start + int(np.argmin(np.isfinite(losses))) + 1
    raise TrainingDiverged(
        f'Training diverged: the loss is {losses[~np.isfinite(losses)][0]} at step {bad_step}. '
        f'The last good checkpoint in {session.workdir} is kept (step '
        f'{session.checkpointer.latest_step()}). Lower --config.optimizer.learning_rate, '
        'set --config.optimizer.grad_clip_norm, or check the data.')
  now = time.perf_counter()
  # Steps inside one block ran at one pace: spread its time evenly over them.
  seconds_per_step = (now - window.start_time) / max(end - window.start_step, 1)
  offset = start
  for point in log_points(session.config.log_every_steps, start, end, session.num_steps):
    window.parts.append({k: v[offset - start:point - start] for k, v in metrics.items()})
    point_time = window.start_time + (point - window.start_step) * seconds_per_step
    record = window.summary(point, session.config.data.batch_size, point_time, session.meter)
    session.writer.write(point, {**record, **session.privacy_scalars(point)})
    # The console shows this very record: the same mean loss and pace as metrics.jsonl.
    session.progress.record(point, window.start_step + 1, record['train/loss'],
                            record['train/steps_per_second'])
    window, offset = Window(start_step=point, start_time=point_time), point
  if offset < end:
    window.parts.append({k: v[offset - start:] for k, v in metrics.items()})
    session.progress.advance(end)
  return window
