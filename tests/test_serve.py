"""`jaxlab serve`: one real server process on 127.0.0.1 for a trained digits_cnn smoke
run, reused by the tests below (the last one stops it with SIGTERM); the batcher and
the server-sent events framing in-process."""

import asyncio
import concurrent.futures
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import portpicker
import pytest
import requests

from jaxlab.serve import batcher as batcher_lib
from jaxlab.serve import generate
from jaxlab.tasks import image_inputs
from tests.conftest import ROOT, read_metrics, run_cli
from tests.serving import start as _start
from tests.test_eval_predict import _write_digit_pngs

MAX_BATCH = 8


@pytest.fixture(scope='module')
def server(trained_digits):
  """(base URL, Popen) of `jaxlab serve` on the trained run."""
  url, process = _start(f'--workdir={trained_digits}', f'--max_batch={MAX_BATCH}',
                        '--max_wait_ms=20')
  try:
    yield url, process
  finally:
    if process.poll() is None:
      process.kill()
    process.wait()


@pytest.fixture(scope='module')
def digit_pngs(tmp_path_factory):
  return _write_digit_pngs(tmp_path_factory.mktemp('pngs'), count=12)[0]


@pytest.fixture(scope='module')
def predicted(trained_digits, digit_pngs):
  """{path: top_k} as `jaxlab predict --json` prints them for digit_pngs."""
  lines = run_cli('predict', f'--workdir={trained_digits}', '--json', *digit_pngs,
                  check=True).stdout.splitlines()
  return {json.loads(line)['file']: json.loads(line)['top_k'] for line in lines}


def _post_file(url, path):
  with open(path, 'rb') as f:
    return requests.post(f'{url}/v1/predict', files={'file': (path.name, f.read())}, timeout=30)


def test_concurrent_requests_answer_as_jaxlab_predict(server, trained_digits, digit_pngs,
                                                      predicted):
  url, expected = server[0], predicted
  # 16 threads at once: single files, and a few multi-file and JSON requests.
  with concurrent.futures.ThreadPoolExecutor(16) as pool:
    singles = list(pool.map(lambda path: _post_file(url, path), digit_pngs + digit_pngs[:4]))
    several = pool.submit(requests.post, f'{url}/v1/predict', timeout=30, files=[
        ('file', (p.name, p.read_bytes())) for p in digit_pngs[:10]])  # > MAX_BATCH: split
    info = _info(trained_digits)
    pixels = [image_inputs.load_image(p, info).tolist() for p in digit_pngs[:3]]
    as_json = pool.submit(requests.post, f'{url}/v1/predict', json={'instances': pixels},
                          timeout=30)
  for path, response in zip(digit_pngs + digit_pngs[:4], singles):
    assert response.status_code == 200, response.text
    [answer] = response.json()['predictions']
    assert answer['file'] == path.name
    _assert_same(answer['top_k'], expected[str(path)])
  answers = several.result().json()['predictions']
  assert [a['file'] for a in answers] == [p.name for p in digit_pngs[:10]]
  for path, answer in zip(digit_pngs[:10], answers):
    _assert_same(answer['top_k'], expected[str(path)])
  for path, answer in zip(digit_pngs[:3], as_json.result().json()['predictions']):
    _assert_same(answer['top_k'], expected[str(path)])
  # Every batch ran at one of the sizes compiled at start-up: nothing compiled since.
  model = requests.get(f'{url}/v1/model', timeout=5).json()
  assert model['batching']['batch_sizes'] == [1, 2, 4, 8]
  assert model['batching']['compilations'] == 4
  stats = requests.get(f'{url}/v1/stats', timeout=5).json()['batcher']
  assert set(stats['batch_size_counts']) <= {'1', '2', '4', '8'}
  assert stats['examples'] >= len(digit_pngs) + 4 + 10 + 3


def _info(workdir):
  from jaxlab import data
  return data.load_info(str(workdir))


def _assert_same(served, predicted):
  assert [p['label'] for p in served] == [p['label'] for p in predicted]
  np.testing.assert_allclose([p['probability'] for p in served],
                             [p['probability'] for p in predicted], rtol=1e-5, atol=1e-7)


def _read_response(connection):
  """(status, JSON body) of one HTTP response read from a socket."""
  reply = b''
  while b'\r\n\r\n' not in reply:
    reply += connection.recv(65536)
  head, body = reply.split(b'\r\n\r\n', 1)
  length = int(next(line.split(b':')[1] for line in head.split(b'\r\n')
                    if line.lower().startswith(b'content-length')))
  while len(body) < length:
    body += connection.recv(65536)
  return int(head.split()[1]), json.loads(body)


def _too_large(url):
  """A request announcing a 1 GB body: refused from its headers alone."""
  host, port = url.rsplit('/', 1)[1].split(':')
  with socket.create_connection((host, int(port)), timeout=10) as connection:
    connection.sendall(b'POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n'
                       b'Content-Length: 1000000000\r\n\r\n')
    return _read_response(connection)


def _json_bytes(body):
  return dict(data=body, headers={'Content-Type': 'application/json'})


BAD_REQUESTS = {  # kind: (method, path, requests keyword arguments, expected status)
    'undecodable image': ('post', '/v1/predict', dict(files={'file': ('x.png', b'\x89PNG..')}),
                          400),
    'wrong shape': ('post', '/v1/predict', dict(json={'instances': [[1, 2, 3]]}), 400),
    'non-numeric values': ('post', '/v1/predict', dict(json={'instances': [[['a'] * 8] * 8]}),
                           400),
    'unknown field': ('post', '/v1/predict', dict(json={'instances': [], 'scale': 2}), 400),
    'missing field': ('post', '/v1/predict', dict(json={'top_k': 2}), 400),
    'empty request': ('post', '/v1/predict', dict(headers={'Content-Type': 'application/json'}),
                      400),
    'malformed JSON': ('post', '/v1/predict', dict(data=b'{"instances": [',
                                                   headers={'Content-Type': 'application/json'}),
                       400),
    'wrong content type': ('post', '/v1/predict', dict(data=b'<x/>',
                                                       headers={'Content-Type': 'text/xml'}), 415),
    'bad top_k': ('post', '/v1/predict?top_k=-1', dict(json={'instances': [[[[0]] * 8] * 8]}),
                  400),
    'top-level array': ('post', '/v1/predict', _json_bytes(b'[[[[0]]]]'), 400),
    'unclosed string': ('post', '/v1/predict', _json_bytes(b'{"texts": ["abc'), 400),
    'not UTF-8': ('post', '/v1/predict', _json_bytes(b'{"texts": ["\xff\xfe"]}'), 400),
    # Without the bound, json.loads recursed past Python's limit: a 500.
    'nested 5000 deep': ('post', '/v1/predict', _json_bytes(b'[' * 5000 + b']' * 5000), 400),
    'instances 5000 deep': ('post', '/v1/predict', _json_bytes(
        b'{"instances": ' + b'[' * 5000 + b'0' + b']' * 5000 + b'}'), 400),
    'instances 900 deep': ('post', '/v1/predict', _json_bytes(  # json.loads would parse it
        b'{"instances": ' + b'[' * 900 + b'0' + b']' * 900 + b'}'), 400),
    'unknown route': ('post', '/v1/classify', {}, 404),
    'wrong method': ('get', '/v1/predict', {}, 405),
    'generate on a classifier': ('post', '/v1/generate', dict(json={'prompt': 'hi'}), 400),
}


def test_bad_input_gets_a_4xx_json_error_and_good_requests_still_succeed(server, digit_pngs):
  url, _ = server
  stop, good = threading.Event(), []

  def keep_asking():  # good requests all along
    while not stop.is_set():
      good.append(_post_file(url, digit_pngs[0]).status_code)

  thread = threading.Thread(target=keep_asking)
  thread.start()
  try:
    answers = {kind: getattr(requests, method)(url + path, timeout=30, **kwargs)
               for kind, (method, path, kwargs, _) in BAD_REQUESTS.items()}
    too_large = _too_large(url)
  finally:
    stop.set()
    thread.join()
  for kind, (_, _, _, status) in BAD_REQUESTS.items():
    response = answers[kind]
    assert response.status_code == status, (kind, response.text)
    body = response.json()
    assert list(body) == ['error'] and body['error'] and '\n' not in body['error'], kind
  assert too_large[0] == 413 and 'larger than' in too_large[1]['error']
  for kind in ('nested 5000 deep', 'instances 5000 deep', 'instances 900 deep'):
    assert 'more than 100 levels deep' in answers[kind].json()['error'], kind
  assert 'not UTF-8' in answers['not UTF-8'].json()['error']
  assert good and set(good) == {200}
  assert _post_file(url, digit_pngs[1]).status_code == 200


def test_model_healthz_and_openapi(server, trained_digits):
  url, _ = server
  assert requests.get(f'{url}/healthz', timeout=5).json() == {'status': 'ok'}
  model = requests.get(f'{url}/v1/model', timeout=5).json()
  last_eval = [r for r in read_metrics(trained_digits) if 'eval/accuracy' in r][-1]
  assert model['checkpoint_step'] == last_eval['step']  # best = last here
  assert model['eval_metrics']['accuracy'] == pytest.approx(last_eval['eval/accuracy'])
  assert model['signature']['inputs'] == {'image': {'shape': [None, 8, 8, 1],
                                                    'dtype': 'float32'}}
  assert model['signature']['class_names'] == [str(d) for d in range(10)]
  assert model['batching']['max_batch'] == MAX_BATCH
  assert model['generate']['available'] is False
  paths = requests.get(f'{url}/openapi.json', timeout=5).json()['paths']
  assert {'/v1/predict', '/v1/generate', '/v1/model', '/healthz'} <= set(paths)
  # The docs pages load their files from this server only (see the browser test below).
  for page, asset in (('docs', 'swagger-ui-bundle.js'), ('redoc', 'redoc.standalone.js')):
    html = requests.get(f'{url}/{page}', timeout=5).text
    assert f'/docs-assets/{asset}' in html and 'http' not in html, html
    assert requests.get(f'{url}/docs-assets/{asset}', timeout=5).status_code == 200


def _browser():
  """Chromium's path; CI fails without it (.ci/run installs it), elsewhere the test skips."""
  path = shutil.which('chromium') or shutil.which('chromium-browser')
  if path is None:
    reason = ('chromium not installed; .ci/run installs it (apt-get install chromium), or '
              'install it to run this test')
    if os.environ.get('CI'):
      pytest.fail(reason)
    pytest.skip(reason)
  return path


def _rendered(url, profile):
  """The DOM of `url` after its scripts ran, in headless Chromium that reaches 127.0.0.1
  alone: every host name fails to resolve and any other address goes to a closed proxy,
  so a page that needs a CDN stays blank even on a machine with internet access."""
  result = subprocess.run(
      [_browser(), '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
       '--no-first-run', f'--user-data-dir={profile}', '--proxy-server=127.0.0.1:9',
       '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
       '--proxy-bypass-list=127.0.0.1', '--virtual-time-budget=10000', '--dump-dom', url],
      capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  return result.stdout


def test_docs_pages_render_in_a_browser_without_internet(server, tmp_path):
  url, _ = server
  swagger = _rendered(f'{url}/docs', tmp_path / 'profile')
  # Operations appear only once swagger-ui's JavaScript has run on /openapi.json.
  assert 'class="opblock opblock-post' in swagger and 'data-path="/v1/predict"' in swagger
  assert 'Predictions for files, texts or JSON arrays' in swagger
  redoc = _rendered(f'{url}/redoc', tmp_path / 'profile')
  assert 'Predictions for files, texts or JSON arrays' in redoc and '/v1/predict' in redoc
  # The same browser cannot reach a CDN: the check above would catch a page that needs one.
  cdn = ('data:text/html,<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/'
         'swagger-ui-bundle.js"></script><script>document.title = typeof SwaggerUIBundle'
         '</script>')
  assert '<title>undefined</title>' in _rendered(cdn, tmp_path / 'profile')


def _request_in_flight(url, body):
  """A connection whose POST has sent its headers and part of its body; it first gets
  one answer on the same connection, so the server has surely accepted it."""
  host, port = url.rsplit('/', 1)[1].split(':')
  connection = socket.create_connection((host, int(port)), timeout=30)
  connection.sendall(b'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
  received = b''
  while b'"ok"' not in received:
    received += connection.recv(65536)
  connection.sendall(b'POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n'
                     + f'Content-Length: {len(body)}\r\n\r\n'.encode() + body[:10])
  return connection


def _finish(connection, body):
  """Sends the rest of the body; (status, JSON answer)."""
  connection.sendall(body[10:])
  with connection:
    return _read_response(connection)


def test_sigterm_finishes_requests_in_flight_and_exits_0(server, digit_pngs):
  url, process = server
  bodies = [path.read_bytes() for path in digit_pngs[:4]]
  connections = [_request_in_flight(url, body) for body in bodies]
  time.sleep(0.5)  # for the server to read the headers (nothing here asserts a time)
  process.send_signal(signal.SIGTERM)
  time.sleep(0.5)  # the server is draining: it waits for these bodies
  answers = [_finish(connection, body) for connection, body in zip(connections, bodies)]
  assert [status for status, _ in answers] == [200] * 4
  assert all(answer['predictions'][0]['top_k'] for _, answer in answers)
  assert process.wait(timeout=60) == 0, process.stdout.read()
  with pytest.raises(requests.ConnectionError):
    requests.get(f'{url}/healthz', timeout=5)


def test_an_export_serves_the_same_answers_and_no_generate(trained_digits, tmp_path,
                                                            digit_pngs, predicted):
  run_cli('export', f'--workdir={trained_digits}', f'--out={tmp_path / "export"}', check=True)
  url, process = _start(f'--export={tmp_path / "export"}', '--max_batch=4')
  try:
    answers = requests.post(f'{url}/v1/predict', timeout=30, files=[
        ('file', (p.name, p.read_bytes())) for p in digit_pngs[:6]]).json()['predictions']
    for path, answer in zip(digit_pngs[:6], answers):
      _assert_same(answer['top_k'], predicted[str(path)])
    refused = requests.post(f'{url}/v1/generate', json={'prompt': 'x'}, timeout=5)
    assert refused.status_code == 501 and 'forward pass only' in refused.json()['error']
    model = requests.get(f'{url}/v1/model', timeout=5).json()
    assert model['signature']['exported']['checkpoint_step'] == model['checkpoint_step']
    assert model['batching']['batch_sizes'] == [1, 2, 4]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
  finally:
    if process.poll() is None:
      process.kill()


# --- in-process: the batcher and the event framing ---------------------------------------


def test_batch_sizes_are_powers_of_two_and_midpoints_up_to_max_batch_in_shard_multiples():
  assert batcher_lib.batch_sizes(1) == [1]
  assert batcher_lib.batch_sizes(8) == [1, 2, 4, 8]
  assert batcher_lib.batch_sizes(32) == [1, 2, 4, 8, 12, 16, 24, 32]
  assert batcher_lib.batch_sizes(20) == [1, 2, 4, 8, 12, 16, 20]
  assert batcher_lib.batch_sizes(16, multiple=4) == [4, 8, 12, 16]


def test_batcher_groups_waiting_requests_pads_and_splits_the_rows_back():
  seen = []

  def model(batch):
    seen.append(len(batch['x']))
    return {'double': batch['x'] * 2}

  batcher = batcher_lib.Batcher(model, max_batch=8, max_wait_ms=200)
  batcher.warm_up({'x': np.zeros(3, np.float32)})
  assert seen == [1, 2, 4, 8]
  seen.clear()

  async def ask(rows):
    batcher.start()
    try:
      return await asyncio.gather(*[batcher.predict({'x': np.full((n, 3), n, np.float32)})
                                    for n in rows])
    finally:
      batcher.stop()

  answers = asyncio.run(ask([1, 2, 2, 11]))  # 11 > max_batch: 8 + 3
  for n, (outputs, timing) in zip([1, 2, 2, 11], answers):
    np.testing.assert_array_equal(outputs['double'], np.full((n, 3), 2 * n))
    assert timing['model_ms'] > 0
  # 1 + 2 + 2 rows padded to 8; the first 8 of 11 do not fit beside them: alone; its
  # last 3 padded to 4.
  assert seen == [8, 8, 4]
  assert batcher.stats.requests == 5 and batcher.stats.examples == 16
  assert batcher.stats.padded_examples == 3 + 1


def test_json_depth_counts_brackets_outside_strings_only():
  from jaxlab.serve import json_body
  cases = {b'': 0, b'{}': 1, b'1': 0, b'{"instances": [[[0.5]], [[1]]]}': 4,
           b'{"a": "[[[[", "b": [1]}': 2, b'["]]]]", [[[1]]]]': 4,  # brackets in strings
           b'["\\"", [[1]]]': 3, b'["\\\\", [[1]]]': 3,  # escaped quote, backslash
           b'["a\\\\\\"]]", [[1]]]': 3, b'[[["a"], "b"], "]"]': 3, b'["[[[': 1,
           b'[' * 5000 + b']' * 5000: 5000}
  for body, depth in cases.items():
    assert json_body.depth(body) == depth, body
    if depth and depth < 100 and body != b'["[[[':
      assert json_body.parse_object(b'{"x": %s}' % body) == {'x': json.loads(body)}
  many = json.dumps({'texts': ['[x] "y" {z} \\'] * 10, 'instances': np.ones((3, 2, 1)).tolist()})
  assert json_body.depth(many.encode()) == 4
  for body, words in ((b'[1]', 'must be an object, not a list'),
                      (b'{"a": ' + b'[' * 101 + b']' * 101 + b'}', 'more than 100 levels'),
                      (b'{"a": "\xc3"}', 'not UTF-8'), (b'{"a": [}', 'Malformed JSON'),
                      (b'', 'empty')):
    with pytest.raises(json_body.BadInput, match=words):
      json_body.parse_object(body)


# `jaxlab serve ARGS` in a process that says, as it exits, whether JAX was ever imported:
# the error exit is os._exit (jaxlab.main.fail_now), so the report hooks that.
_SERVE_REPORTING_JAX = (
    'import os, sys\n'
    'exit = os._exit\n'
    'os._exit = lambda code: (print("jax imported:", "jax" in sys.modules, flush=True), '
    'exit(code))\n'
    'sys.argv = ["jaxlab", "serve", *sys.argv[1:]]\n'
    'from jaxlab import main\n'
    'main.run()\n')


@pytest.mark.parametrize('occupied_host', ['127.0.0.1', '0.0.0.0'])
def test_a_port_in_use_fails_at_once_before_loading_anything(tmp_path, occupied_host):
  with socket.socket() as occupier:
    occupier.bind((occupied_host, 0))
    occupier.listen()
    port = occupier.getsockname()[1]
    # An empty workdir: had serve opened it, the error would be its missing config.json.
    result = subprocess.run([sys.executable, '-c', _SERVE_REPORTING_JAX, f'--workdir={tmp_path}',
                             f'--port={port}'], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
  assert result.returncode == 2
  error, = result.stderr.strip().splitlines()
  assert error.startswith(f'jaxlab: error: Port {port} on 127.0.0.1 is in use')
  assert 'Pass a free port, e.g. --port=' in error
  assert result.stdout.strip() == 'jax imported: False'  # no runtime, no model, no compiling


def test_the_bound_socket_refuses_connections_until_start_up_is_done():
  from jaxlab.errors import UserError
  from jaxlab.serve import listener
  sock = listener.bind('127.0.0.1', portpicker.pick_unused_port())
  port = sock.getsockname()[1]
  try:
    with pytest.raises(ConnectionRefusedError):  # not queued while the model loads
      socket.create_connection(('127.0.0.1', port), timeout=5).close()
    listener.listen(sock, '127.0.0.1', port)
    socket.create_connection(('127.0.0.1', port), timeout=5).close()
    with pytest.raises(UserError, match=f'Port {port} on 127.0.0.1 is in use'):
      listener.bind('127.0.0.1', port)
  finally:
    sock.close()


def test_ports_outside_the_tcp_range_are_refused():
  from jaxlab.errors import UserError
  from jaxlab.serve import listener
  for port in (0, 99999):
    with pytest.raises(UserError, match=f'--port={port} is not a TCP port'):
      listener.bind('127.0.0.1', port)


def test_without_the_server_packages_serve_says_what_to_install(monkeypatch):
  import importlib.util
  from jaxlab.serve import server as serve
  from jaxlab.errors import UserError
  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, 'find_spec',
                      lambda name, *a: None if name == 'uvicorn' else real(name, *a))
  with pytest.raises(UserError, match=r"needs uvicorn: pip install 'jaxlab\[serve\]'"):
    serve.require_stack()


def test_server_sent_events_framing_and_generate_request_checks():
  assert generate.event({'text': 'a\nb'}) == b'data: {"text": "a\\nb"}\n\n'
  assert generate.event({'tokens': 3}, 'done') == b'event: done\ndata: {"tokens": 3}\n\n'
  assert generate.parse({'prompt': 'x', 'top_p': 1}) == dict(
      prompt='x', max_tokens=200, temperature=0.8, top_k=0, top_p=1.0, seed=0)
  for body, words in (({'prompt': 'x', 'beam': 2}, 'Unknown field'), ({}, 'Missing field'),
                      ({'prompt': 'x', 'max_tokens': '5'}, 'must be an integer'),
                      ({'prompt': 'x', 'seed': True}, 'must be an integer'),
                      ({'prompt': 'x', 'top_p': 0}, 'top_p')):
    with pytest.raises(generate.BadInput, match=words):
      generate.parse(body)


def test_load_benchmark_summary_and_the_reports_serving_section():
  from benchmarks import report, serve_load
  timing = dict(decode=0.5, queue=2.0, model=3.0, total=6.0)
  results = [(0.010, timing)] * 95 + [(0.150, timing)] * 5  # latencies 10 ms, 5 of 150 ms
  stats = lambda batches, examples, ms: dict(batches=batches, examples=examples,
                                            model_ms_total=ms)
  model = dict(max_batch=32, max_wait_ms=5.0, batch_sizes=[1, 2, 4, 8, 16, 32], compilations=6)
  rows = [serve_load.summary('mnist_cnn', mode, 32, 50, seconds, results, stats(0, 0, 0),
                             stats(batches, 100, 30.0), model, 0, dict(server=0.1, client=0.01))
          for mode, seconds, batches in (('batched', 0.5, 10), ('unbatched', 1.0, 100))]
  batched = rows[0]
  assert batched['throughput_rps'] == 200 and batched['examples_per_batch'] == 10
  assert batched['latency_ms']['p50'] == pytest.approx(10.0)
  assert batched['per_request_ms']['server_other'] == pytest.approx(0.5)
  assert batched['latency_ms']['p99'] == pytest.approx(150.0)
  assert batched['per_request_ms']['http'] == pytest.approx(17.0 - 6.0)
  assert batched['model_ms_per_batch'] == 3.0 and batched['server_cpu_ms_per_request'] == 1.0
  target = serve_load.targets(rows)
  assert target['measured_speedup'] == 2.0 and target['met'] is False  # p99 150 ms
  section = report.serving_section(dict(command='x', context=dict(date='d', load_average=1.0),
                                        rows=rows, target=target))
  assert '| mnist_cnn | batched (max_batch 32) | 32 | 100 | 200 |' in section
  assert 'Measured: 2.00x' in section and 'NOT met' in section


@pytest.mark.slow
def test_generate_streams_the_text_sampling_makes_and_text_predicts_as_files(tmp_path):
  from jaxlab.inference import sampling
  from jaxlab.serve import inputs, sources
  from jaxlab.tasks import text_inputs
  workdir = tmp_path / 'lm'
  run_cli('train', '--config=experiments/python_docs_lm.py:smoke', f'--workdir={workdir}',
          check=True)
  source = sources.WorkdirSource(str(workdir), 'best')
  batcher = batcher_lib.Batcher(source, max_batch=2, max_wait_ms=1)
  generator = generate.Generator(source, batcher)
  request = dict(prompt='The for statement', max_tokens=20, temperature=0.7, seed=3)

  async def stream():
    batcher.start()
    try:
      with pytest.raises(generate.BadInput, match='fills the model.s context of 64 tokens'):
        await generator.start(dict(request, prompt='x' * 64))
      with pytest.raises(generate.BadInput, match='max_tokens=0 must be at least 1'):
        await generator.start(dict(request, max_tokens=0))
      past_context = [e async for e in await generator.start(dict(request, max_tokens=999))]
      done = json.loads(past_context[-1].decode().split('data: ', 1)[1])
      assert 1 <= done['tokens'] <= 64 - len('The for statement')  # stopped by the context
      return [event async for event in await generator.start(request)]
    finally:
      batcher.stop()

  events = asyncio.run(stream())
  pieces = [json.loads(e.decode().split('data: ', 1)[1]) for e in events]
  sampler, tokenizer = source.sampler
  settings = dict(request)
  prompt = settings.pop('prompt')
  ids = sampler.sample(source.run.variables, tokenizer.encode(prompt),
                       sampling.Settings.create(**settings))
  assert ''.join(p['text'] for p in pieces[:-1]) == tokenizer.decode(ids)
  assert events[-1].startswith(b'event: done\n') and pieces[-1]['tokens'] == len(ids)
  # Text in a request is tokenized as `jaxlab predict` tokenizes a text file.
  path = tmp_path / 'notes.txt'
  path.write_text('The while loop')
  from_file, _, _ = text_inputs.language_model_inputs(source.task, [path])
  from_request = inputs.Decoder(source).texts(['The while loop'])
  for name in from_file:
    np.testing.assert_array_equal(from_request[name], from_file[name])
