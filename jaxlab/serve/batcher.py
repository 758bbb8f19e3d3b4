"""Dynamic batching on one model thread.

Requests (each a dict of arrays with a leading example axis) wait in a queue; the model
thread takes the first, then keeps taking more until `max_wait_ms` have passed since the
first arrived or `max_batch` examples are in hand, pads the group to the next of a few
fixed batch sizes (`batch_sizes`), runs the model once and hands each request its rows.
Every size is compiled by `warm_up` before the server opens its port, so a request never
meets a compilation. The event loop only enqueues and awaits: it never runs the model.

The same thread runs other model work in turn (`call`: a language model's generation
chunks), so the model is used by one thread only.
"""

import asyncio
import concurrent.futures
import dataclasses
import queue
import threading
import time

import numpy as np


def batch_sizes(max_batch, multiple=1):
  """Powers of two up to max_batch, and max_batch, each rounded up to a multiple (the
  number of data-parallel devices)."""
  sizes, size = [], 1
  while size < max_batch:
    sizes.append(size)
    size *= 2
  sizes.append(max_batch)
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
class _Call:
  function: object
  future: concurrent.futures.Future


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
  """Groups `submit`ted requests into padded batches for `model` (a callable of a dict
  of arrays returning a dict of arrays with the same leading axis)."""

  def __init__(self, model, *, max_batch, max_wait_ms, multiple=1):
    self.model = model
    self.max_batch = max_batch
    self.max_wait = max_wait_ms / 1000
    self.sizes = batch_sizes(max_batch, multiple)
    self.stats = Stats()
    self._queue = queue.SimpleQueue()
    self._held = None  # a request taken from the queue that did not fit the last batch
    self._thread = None
    self._loop = None  # the event loop whose requests' futures the batches settle

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
    """Lets the thread finish what is queued, then end."""
    if self._thread:
      self._queue.put(None)
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
      self._queue.put(request)
      requests.append(request)
    parts = [await r.future for r in requests]
    outputs = parts[0] if len(parts) == 1 else {
        k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    timing = dict(queue_ms=1000 * max(r.queue_seconds for r in requests),
                  model_ms=1000 * sum(r.model_seconds for r in requests))
    return outputs, timing

  async def call(self, function):
    """function() run on the model thread, between batches."""
    call = _Call(function, concurrent.futures.Future())
    self._queue.put(call)
    return await asyncio.wrap_future(call.future)

  def _work(self):
    while True:
      item = self._held if self._held is not None else self._queue.get()
      self._held = None
      if item is None:
        return
      if isinstance(item, _Call):
        _settle(item.future, item.function)
        continue
      self._run(self._gather(item))

  def _gather(self, first):
    """`first` and the requests that arrive within max_wait of it, up to max_batch rows."""
    group, count = [first], first.count
    deadline = first.arrived + self.max_wait
    while count < self.max_batch:
      try:
        item = self._queue.get(timeout=max(deadline - time.perf_counter(), 0))
      except queue.Empty:
        break
      if item is None or isinstance(item, _Call) or count + item.count > self.max_batch:
        self._held = item
        break
      group.append(item)
      count += item.count
    return group

  def _run(self, group):
    count = sum(r.count for r in group)
    size = next(s for s in self.sizes if s >= count)
    batch = {k: np.concatenate([r.inputs[k] for r in group]) if len(group) > 1
             else group[0].inputs[k] for k in group[0].inputs}
    started = time.perf_counter()
    try:
      outputs = self.model(pad_rows(batch, size))
    except Exception as error:  # pylint: disable=broad-except
      self._loop.call_soon_threadsafe(_settle_all, [(r.future, None, error) for r in group])
      return
    seconds = time.perf_counter() - started
    self._count(group, count, size, seconds)
    settled, offset = [], 0
    for request in group:
      request.queue_seconds = started - request.arrived
      request.model_seconds = seconds
      rows = {k: v[offset:offset + request.count] for k, v in outputs.items()}
      settled.append((request.future, rows, None))
      offset += request.count
    # One wake-up of the event loop per batch, not one per request.
    self._loop.call_soon_threadsafe(_settle_all, settled)

  def _count(self, group, count, size, seconds):
    stats = self.stats
    stats.batches += 1
    stats.requests += len(group)
    stats.examples += count
    stats.padded_examples += size - count
    stats.model_seconds += seconds
    stats.batch_size_counts[size] = stats.batch_size_counts.get(size, 0) + 1


def _settle_all(settled):
  """On the event loop: each (future, result, error)."""
  for future, result, error in settled:
    if future.cancelled():  # its client went away
      continue
    if error is not None:
      future.set_exception(error)
    else:
      future.set_result(result)


def _settle(future, function):
  try:
    future.set_result(function())
  except Exception as error:  # pylint: disable=broad-except
    future.set_exception(error)
