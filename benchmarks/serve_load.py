"""Load benchmark of `jaxlab serve`: N concurrent clients on 127.0.0.1, each sending a
bounded number of PNG images (one per request), against a server with dynamic batching
and one with --max_batch=1, for digits_cnn and mnist_cnn (trained briefly on their
embedded or synthetic data: only serving speed matters here).

  python -m benchmarks.serve_load --out=benchmarks/results_serve_cpu.json
  python -m benchmarks.serve_load --clients=8 --requests=20 --out=/tmp/serve.json   # quick

Reported per (workload, mode): throughput (requests/s), client latency p50/p99, and where
a request's time goes, from the server's Server-Timing header (decoding the upload, waiting
for a batch, the model call) and its /v1/stats (model ms per batch, examples per batch);
the rest of the client's latency is HTTP (parsing, routing, the JSON answer, the loopback
and the client). The clients are a small asyncio HTTP/1.1 client with one keep-alive
connection each, so they take little of the CPU the server shares with them.
`python -m benchmarks.report ...` adds a "Serving" section from the JSON.
"""

import argparse
import asyncio
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

from benchmarks import environment

ROOT = environment.ROOT
WORKLOADS = {  # name: (training command arguments, PNG side)
    'digits_cnn': (['--config=experiments/digits_cnn.py:smoke'], 8),
    'mnist_cnn': (['--config=experiments/mnist_cnn.py:smoke', '--config.data.name=synthetic'],
                  28),
}
MODES = {'batched': ['--max_batch=32', '--max_wait_ms=5'], 'unbatched': ['--max_batch=1']}
TARGET = dict(workload='mnist_cnn', clients=32, speedup=1.5, p99_ms=100.0)


def train(name, workdir):
  args, _ = WORKLOADS[name]
  subprocess.run([sys.executable, '-m', 'jaxlab.main', 'train', *args, f'--workdir={workdir}',
                  '--config.progress=False'], cwd=ROOT, check=True, capture_output=True)


def png_bytes(side, count, seed=0):
  """`count` random grey PNG images of side x side pixels."""
  from PIL import Image
  rng = np.random.default_rng(seed)
  images = []
  for _ in range(count):
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side), np.uint8)).save(buffer, 'PNG')
    images.append(buffer.getvalue())
  return images


def multipart(image, boundary='jaxlabbench'):
  """(body, content type) of a multipart upload of one file."""
  body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
          f'Content-Type: image/png\r\n\r\n').encode() + image + f'\r\n--{boundary}--\r\n'.encode()
  return body, f'multipart/form-data; boundary={boundary}'


def start_server(workdir, port, mode):
  process = subprocess.Popen(
      [sys.executable, '-m', 'jaxlab.main', 'serve', f'--workdir={workdir}', f'--port={port}',
       *MODES[mode]], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  deadline = time.monotonic() + 180
  while time.monotonic() < deadline:
    if process.poll() is not None:
      raise RuntimeError(f'jaxlab serve exited {process.returncode}: {process.stdout.read()}')
    try:
      with urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=1):
        return process
    except OSError:
      time.sleep(0.2)
  process.kill()
  raise RuntimeError('jaxlab serve did not start')


def get_json(port, path):
  with urllib.request.urlopen(f'http://127.0.0.1:{port}{path}', timeout=10) as response:
    return json.load(response)


async def _exchange(reader, writer, request):
  """Sends one request on a keep-alive connection; (status, headers, body)."""
  writer.write(request)
  await writer.drain()
  head = await reader.readuntil(b'\r\n\r\n')
  lines = head.decode().split('\r\n')
  headers = dict(line.split(': ', 1) for line in lines[1:] if ': ' in line)
  headers = {k.lower(): v for k, v in headers.items()}
  body = await reader.readexactly(int(headers['content-length']))
  return int(lines[0].split()[1]), headers, body


def _server_timing(header):
  """{'decode': ms, ...} from a Server-Timing header."""
  parts = (item.strip().split(';dur=') for item in header.split(','))
  return {name: float(ms) for name, ms in parts}


async def _client(port, requests, results):
  reader, writer = await asyncio.open_connection('127.0.0.1', port)
  try:
    for request in requests:
      started = time.perf_counter()
      status, headers, _ = await _exchange(reader, writer, request)
      latency = time.perf_counter() - started
      if status != 200:
        raise RuntimeError(f'status {status}')
      results.append((latency, _server_timing(headers['server-timing'])))
  finally:
    writer.close()


def requests_for(images, port):
  built = []
  for image in images:
    body, content_type = multipart(image)
    built.append(f'POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: '
                 f'{content_type}\r\nContent-Length: {len(body)}\r\n\r\n'.encode() + body)
  return built


async def _load(port, requests, clients, per_client):
  results = []
  started = time.perf_counter()
  await asyncio.gather(*[_client(port, [requests[(c * per_client + i) % len(requests)]
                                        for i in range(per_client)], results)
                         for c in range(clients)])
  return time.perf_counter() - started, results


def measure(workdir, name, mode, port, clients, per_client):
  _, side = WORKLOADS[name]
  requests = requests_for(png_bytes(side, 64), port)
  server = start_server(workdir, port, mode)
  try:
    asyncio.run(_load(port, requests, min(clients, 4), 10))  # warm the connection paths
    before = get_json(port, '/v1/stats')['batcher']
    cpu_before, client_before = cpu_seconds(server.pid), time.process_time()
    seconds, results = asyncio.run(_load(port, requests, clients, per_client))
    cpu = dict(server=cpu_seconds(server.pid) - cpu_before,
               client=time.process_time() - client_before)
    after = get_json(port, '/v1/stats')['batcher']
    model = get_json(port, '/v1/model')['batching']
  finally:
    server.terminate()
    exit_code = server.wait(timeout=60)
  return summary(name, mode, clients, per_client, seconds, results, before, after, model,
                 exit_code, cpu)


def cpu_seconds(pid):
  """User + system CPU seconds of a process so far (Linux /proc)."""
  with open(f'/proc/{pid}/stat') as f:
    fields = f.read().rsplit(')', 1)[1].split()
  return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def summary(name, mode, clients, per_client, seconds, results, before, after, model, exit_code,
            cpu):
  latencies_ms = np.array([latency for latency, _ in results]) * 1000
  timing = {k: float(np.mean([t[k] for _, t in results])) for k in results[0][1]}
  batches = after['batches'] - before['batches']
  examples = after['examples'] - before['examples']
  model_ms = after['model_ms_total'] - before['model_ms_total']
  mean_latency = float(latencies_ms.mean())
  return dict(
      workload=name, mode=mode, clients=clients, requests=len(results),
      requests_per_client=per_client, max_batch=model['max_batch'],
      max_wait_ms=model['max_wait_ms'], batch_sizes=model['batch_sizes'],
      compilations=model['compilations'], seconds=seconds,
      throughput_rps=len(results) / seconds,
      latency_ms=dict(p50=float(np.percentile(latencies_ms, 50)),
                      p99=float(np.percentile(latencies_ms, 99)), mean=mean_latency),
      # Server-side, per request (means): decode the upload; wait for the batch; the
      # model call of its batch; the server's whole handling. HTTP: the client's latency
      # less the server's handling.
      per_request_ms=dict(decode=timing['decode'], queue=timing['queue'],
                          model=timing['model'],
                          server_other=timing['total'] - timing['decode'] - timing['queue']
                          - timing['model'],
                          server_total=timing['total'], http=mean_latency - timing['total']),
      batches=batches, examples_per_batch=examples / batches if batches else None,
      model_ms_per_batch=model_ms / batches if batches else None,
      model_ms_per_example=model_ms / examples if examples else None,
      # CPU time per request (all threads), which other load on the machine does not
      # inflate as it does wall times: the server process, and the benchmark's clients.
      server_cpu_ms_per_request=1000 * cpu['server'] / len(results),
      client_cpu_ms_per_request=1000 * cpu['client'] / len(results),
      server_exit_code=exit_code)


def targets(rows):
  """The issue's target: mnist_cnn at 32 clients, batching >= 1.5x the unbatched
  throughput and p99 latency < 100 ms."""
  found = {r['mode']: r for r in rows if r['workload'] == TARGET['workload']}
  if set(found) != set(MODES):
    return None
  speedup = found['batched']['throughput_rps'] / found['unbatched']['throughput_rps']
  p99 = found['batched']['latency_ms']['p99']
  return dict(TARGET, measured_clients=found['batched']['clients'], measured_speedup=speedup,
              measured_p99_ms=p99, met=bool(speedup >= TARGET['speedup'] and
                                            p99 < TARGET['p99_ms']))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out', default='benchmarks/results_serve_cpu.json')
  parser.add_argument('--clients', type=int, default=32)
  parser.add_argument('--requests', type=int, default=100, help='requests per client')
  parser.add_argument('--only', default='', help='comma-separated workloads')
  args = parser.parse_args(argv)
  import portpicker
  names = args.only.split(',') if args.only else list(WORKLOADS)
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for name in names:
      workdir = os.path.join(tmp, name)
      train(name, workdir)
      for mode in MODES:
        row = measure(workdir, name, mode, portpicker.pick_unused_port(), args.clients,
                      args.requests)
        rows.append(row)
        print(f'{name} {mode}: {row["throughput_rps"]:.0f} requests/s, p50 '
              f'{row["latency_ms"]["p50"]:.1f} ms, p99 {row["latency_ms"]["p99"]:.1f} ms, '
              f'{row["examples_per_batch"] or 0:.1f} examples per batch', flush=True)
  result = dict(command=' '.join(['python -m benchmarks.serve_load', *(argv or sys.argv[1:])]),
                context=dict(environment.describe(os.environ), load_average=environment.load_average()),
                rows=rows, target=targets(rows))
  with open(args.out, 'w') as f:
    json.dump(result, f, indent=2)
    f.write('\n')
  return 0


if __name__ == '__main__':
  sys.exit(main())
