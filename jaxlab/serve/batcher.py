"""Dynamic batching: requests gathered on the event loop, run on one model thread.

Requests (each a dict of arrays with a leading example axis) wait in a list on the event
loop. While the model thread is free, the first waiting request starts a `max_wait_ms`
timer; when it fires, or once `max_batch` examples wait, the waiting requests (up to
`max_batch` examples) go to the model thread as one batch, padded to the next of a few
fixed sizes (`batch_sizes`). While the model is busy, requests keep gathering; when it is
done, the next batch leaves at once if its first request has waited `max_wait_ms`
already. Every size is compiled by `warm_up` before the server opens its port, so no
request meets a compilation.

Only the event loop touches the waiting list (no locks), the model thread wakes once per
batch, and the loop is woken once per finished batch, so neither pays per request for
the other. The model thread runs other work in turn (`call`: a language model's
generation chunks), so the model is used by one thread only.
"""

import asyncio
import collections
import concurrent.futures
import dataclasses
import queue
import threading
import time

import numpy as np


def batch_sizes(max_batch, multiple=1):
  """The sizes batches are padded to: powers of two up to max_batch, from 8 on with a
  step of 1.5x between two (12, 24, 48, ...: padding wastes at most a third, not half),
  and max_batch; each rounded up to a multiple (the number of data-parallel devices)."""
  sizes, size = [], 1
  while size < max_batch:
    sizes += [size, size * 3 // 2] if size >= 8 else [size]
    size *= 2
  sizes = [s for s in sizes if s < max_batch] + [max_batch]
  return sorted({-(-s // multiple) * multiple for s in sizes})


def pad_rows(batch, size):
  """Each array of `batch` padded with zero rows to `size` rows."""
  count = len(next(iter(batch.values())))
  if count == size:
    return batch
  return {k: np.concatenate([v, np.zeros((size - count, *v.shape[1:]), v.dtype)])
          for k, v in batch.items()}


@dataclasses.dataclass
class _Request:
  inputs: dict
  count: int
  future: asyncio.Future  # of the event loop, settled there
  arrived: float  # time.perf_counter()
  model_seconds: float = 0.0  # of the batch this request ran in
  queue_seconds: float = 0.0  # from arrival to the start of its batch


@dataclasses.dataclass
class Stats:
  """What the model thread has done since start-up (read by GET /v1/stats)."""
  batches: int = 0
  requests: int = 0
  examples: int = 0
  padded_examples: int = 0
  model_seconds: float = 0.0
  batch_size_counts: dict = dataclasses.field(default_factory=dict)

  def to_json(self):
    per_batch = self.model_seconds / self.batches if self.batches else None
    per_request = self.model_seconds / self.requests if self.requests else None
    return dict(batches=self.batches, requests=self.requests, examples=self.examples,
                padded_examples=self.padded_examples,
                mean_examples_per_batch=self.examples / self.batches if self.batches else None,
                model_ms_total=1000 * self.model_seconds,
                model_ms_per_batch=per_batch and 1000 * per_batch,
                model_ms_per_request=per_request and 1000 * per_request,
                batch_size_counts={str(k): v for k, v in sorted(self.batch_size_counts.items())})


class Batcher:
  """Groups `predict`ed requests into padded batches for `model` (a callable of a dict
  of arrays returning a dict of arrays with the same leading axis)."""

  def __init__(self, model, *, max_batch, max_wait_ms, multiple=1):
    self.model = model
    self.max_batch = max_batch
    self.max_wait = max_wait_ms / 1000
    self.sizes = batch_sizes(max_batch, multiple)
    self.stats = Stats()
    self._work_queue = queue.SimpleQueue()  # to the model thread: batches, calls, None
    self._thread = None
    self._loop = None
    # Event-loop side:
    self._waiting = collections.deque()  # requests not yet sent to the model
    self._waiting_rows = 0
    self._model_busy = False
    self._timer = None

  def warm_up(self, example):
    """Runs every batch size once (compiling each) on copies of one example's inputs."""
    for size in self.sizes:
      self.model({k: np.repeat(v[None], size, axis=0) for k, v in example.items()})

  def start(self):
    """Starts the model thread; call from the event loop that will submit requests."""
    self._loop = asyncio.get_running_loop()
    self._thread = threading.Thread(target=self._work, name='jaxlab-model', daemon=True)
    self._thread.start()

  def stop(self):
    """Lets the model thread finish what it was given, then end."""
    if self._thread:
      self._work_queue.put(None)
      self._thread.join()
      self._thread = None

  async def predict(self, inputs):
    """The model's outputs for `inputs` (any number of rows), and this request's timing
    {'queue_ms', 'model_ms'} (the model time of the batches it ran in)."""
    count = len(next(iter(inputs.values())))
    requests = []
    for start in range(0, count, self.max_batch):  # larger requests go in several batches
      part = {k: v[start:start + self.max_batch] for k, v in inputs.items()}
      request = _Request(part, min(self.max_batch, count - start), self._loop.create_future(),
                         time.perf_counter())
      self._waiting.append(request)
      self._waiting_rows += request.count
      requests.append(request)
    self._schedule()
    parts = [await r.future for r in requests]
    outputs = parts[0] if len(parts) == 1 else {
        k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    timing = dict(queue_ms=1000 * max(r.queue_seconds for r in requests),
                  model_ms=1000 * sum(r.model_seconds for r in requests))
    return outputs, timing

  async def call(self, function):
    """function() run on the model thread, between batches."""
    future = concurrent.futures.Future()
    self._work_queue.put((function, future))
    return await asyncio.wrap_future(future)

  # --- on the event loop --------------------------------------------------------------

  def _schedule(self):
    """Sends a batch if the model is free and one is due; else sets the timer."""
    if self._model_busy or not self._waiting:
      return
    due = self._waiting[0].arrived + self.max_wait
    if self._waiting_rows >= self.max_batch or time.perf_counter() >= due:
      self._send()
    elif self._timer is None:
      self._timer = self._loop.call_later(due - time.perf_counter(), self._on_timer)

  def _on_timer(self):
    self._timer = None
    self._schedule()

  def _send(self):
    if self._timer is not None:
      self._timer.cancel()
      self._timer = None
    group, rows = [], 0
    while self._waiting and rows + self._waiting[0].count <= self.max_batch:
      request = self._waiting.popleft()
      group.append(request)
      rows += request.count
    self._waiting_rows -= rows
    self._model_busy = True
    self._work_queue.put(group)

  def _finished(self, settled):
    """A batch is done: answer its requests, and send the next."""
    self._model_busy = False
    for future, result, error in settled:
      if future.cancelled():  # its client went away
        continue
      if error is not None:
        future.set_exception(error)
      else:
        future.set_result(result)
    self._schedule()

  # --- on the model thread ------------------------------------------------------------

  def _work(self):
    while (item := self._work_queue.get()) is not None:
      if isinstance(item, tuple):
        function, future = item
        try:
          future.set_result(function())
        except Exception as error:  # pylint: disable=broad-except
          future.set_exception(error)
      else:
        # One wake-up of the event loop per batch, not one per request.
        self._loop.call_soon_threadsafe(self._finished, self._run(item))

  def _run(self, group):
    """[(future, outputs or None, error or None)] of a group of requests."""
    count = sum(r.count for r in group)
    size = next(s for s in self.sizes if s >= count)
    batch = {k: np.concatenate([r.inputs[k] for r in group]) if len(group) > 1
             else group[0].inputs[k] for k in group[0].inputs}
    started = time.perf_counter()
    try:
      outputs = self.model(pad_rows(batch, size))
    except Exception as error:  # pylint: disable=broad-except
      return [(r.future, None, error) for r in group]
    seconds = time.perf_counter() - started
    self._count(group, count, size, seconds)
    settled, offset = [], 0
    for request in group:
      request.queue_seconds = started - request.arrived
      request.model_seconds = seconds
      settled.append((request.future,
                      {k: v[offset:offset + request.count] for k, v in outputs.items()}, None))
      offset += request.count
    return settled

  def _count(self, group, count, size, seconds):
    stats = self.stats
    stats.batches += 1
    stats.requests += len(group)
    stats.examples += count
    stats.padded_examples += size - count
    stats.model_seconds += seconds
    stats.batch_size_counts[size] = stats.batch_size_counts.get(size, 0) + 1
