"""`jaxlab export`: for each shipped task (image classification, text classification,
language model), the exported model, run in a fresh process that imports only jax,
numpy and the export's own load_exported.py, gives what `jaxlab predict` computes."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jaxlab.commands import export as export_command
from jaxlab.inference import trained_run as inference
from jaxlab.inference import predict
from jaxlab.errors import UserError
from jaxlab.train import loop
from tests.conftest import load_config, run_cli

# The module fixture trains three runs (one step each), exports them and starts a process.
pytestmark = pytest.mark.slow

# One step of the cheapest optimizer to compile, no plots: the test needs a checkpoint,
# not a good model.
ONE_STEP = dict(num_steps=1, steps_per_loop=1, log_every_steps=1, eval_every_steps=1,
                checkpoint_every_steps=1, plots=False, optimizer__name='sgd',
                optimizer__schedule='constant', optimizer__grad_clip_norm=0.0,
                optimizer__weight_decay=0.0, optimizer__momentum=0.0)
# (experiment, config argument): one of each task the experiments ship.
RUNS = {'image': ('digits_cnn', 'smoke'), 'text': ('python_snippets_text', 'smoke'),
        'lm': ('python_docs_lm', 'smoke')}
SNIPPETS = ('import asyncio\n\nasync def main():\n    await asyncio.sleep(1)\n',
            'import logging\nlog = logging.getLogger(__name__)\nlog.info("started %s", 1)\n',
            'from email.message import EmailMessage\nmsg = EmailMessage()\n' * 4)

# Runs in a fresh interpreter outside the repository: loads each export with its own copy
# of the loader, calls it on saved inputs and saves the outputs.
FRESH_PROCESS = '''
import importlib.util, json, sys
import numpy as np
calls = json.loads(sys.argv[1])
for index, (directory, inputs, outputs) in enumerate(calls):
  spec = importlib.util.spec_from_file_location(f'load_exported_{index}',
                                                f'{directory}/load_exported.py')
  loader = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(loader)
  with np.load(inputs) as arrays:
    np.savez(outputs, **loader.load(directory)(dict(arrays)))
print(json.dumps(sorted(name for name in sys.modules if name.split('.')[0] in ('jaxlab', 'flax'))))
'''


def _inputs(kind, folder):
  """Input files for `jaxlab predict` of a run of `kind`, three of them."""
  folder.mkdir()
  rng = np.random.default_rng(0)
  paths = []
  for index in range(3):
    if kind == 'image':  # noise at a size other than 8x8: predict resizes it
      path = folder / f'{index}.png'
      Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(path)
    else:  # text: for the LM one shorter than its 64-token rows, two longer
      path = folder / f'{index}.txt'
      path.write_text(SNIPPETS[index][:40] if index == 0 else SNIPPETS[index])
    paths.append(path)
  return paths


@pytest.fixture(scope='module')
def exports(tmp_path_factory):
  """{kind: dict(workdir, out, expected, exported)}: each run trained for one step,
  exported, and its predict outputs on three files, by jaxlab and by the export."""
  folder = tmp_path_factory.mktemp('export')
  results, calls = {}, []
  for kind, (name, arg) in RUNS.items():
    workdir, out = folder / f'{kind}_run', folder / f'{kind}_export'
    loop.run(load_config(name, arg, **ONE_STEP), str(workdir))
    export_command.main(str(workdir), str(out))
    run = inference.load(str(workdir))
    batch, _, errors = run.task.predict_inputs(_inputs(kind, folder / kind))
    assert not errors
    np.savez(folder / f'{kind}_in.npz', **batch)
    calls.append((str(out), str(folder / f'{kind}_in.npz'), str(folder / f'{kind}_out.npz')))
    results[kind] = dict(workdir=workdir, out=out, batch=batch,
                         expected=predict.outputs(run, batch))
  # The language model at a shorter length than it was exported at.
  short = {k: v[:, :10] for k, v in results['lm']['batch'].items()}
  np.savez(folder / 'lm_short_in.npz', **short)
  calls.append((str(results['lm']['out']), str(folder / 'lm_short_in.npz'),
                str(folder / 'lm_short_out.npz')))
  fresh = subprocess.run([sys.executable, '-c', FRESH_PROCESS, json.dumps(calls)], cwd=folder,
                         capture_output=True, text=True, timeout=300, check=False)
  assert fresh.returncode == 0, fresh.stderr[-3000:]
  for kind in RUNS:
    with np.load(folder / f'{kind}_out.npz') as arrays:
      results[kind]['exported'] = dict(arrays)
  with np.load(folder / 'lm_short_out.npz') as arrays:
    results['lm']['short'] = dict(arrays)
  results['imported'] = json.loads(fresh.stdout.strip().splitlines()[-1])
  return results


def test_the_fresh_process_imports_neither_jaxlab_nor_flax(exports):
  assert exports['imported'] == []


@pytest.mark.parametrize('kind', RUNS)
def test_exported_model_gives_the_outputs_of_jaxlab_predict(exports, kind):
  expected, exported = exports[kind]['expected'], exports[kind]['exported']
  assert set(exported) == set(expected) | {'logits'}
  for name, value in expected.items():
    np.testing.assert_allclose(exported[name], value, atol=1e-5, err_msg=name)
  assert len(exported['logits']) == 3  # the training and eval batches were 16 and more


def test_classifier_probabilities_are_the_softmax_of_its_logits(exports):
  for kind in ('image', 'text'):
    logits = exports[kind]['exported']['logits']
    softmax = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(exports[kind]['exported']['probabilities'],
                               softmax / softmax.sum(-1, keepdims=True), atol=1e-6)


def test_language_model_takes_shorter_sequences_with_the_same_causal_logits(exports):
  full, short = exports['lm']['exported']['logits'], exports['lm']['short']['logits']
  assert short.shape == (3, 10, full.shape[-1])
  np.testing.assert_allclose(short, full[:, :10], atol=1e-5)


def test_signature_describes_inputs_outputs_and_the_checkpoint(exports):
  image = json.loads((exports['image']['out'] / 'signature.json').read_text())
  assert image['inputs'] == {'image': {'shape': ['b', 8, 8, 1], 'dtype': 'float32'}}
  assert image['outputs']['probabilities'] == {'shape': ['b', 10], 'dtype': 'float32'}
  assert image['preprocessing']['pixel_range'] == [0.0, 16.0]
  assert image['class_names'] == [str(i) for i in range(10)]
  assert image['checkpoint_step'] == 1 and image['metrics']['step'] == 1
  assert 'six months' in image['compatibility']
  lm = json.loads((exports['lm']['out'] / 'signature.json').read_text())
  assert lm['inputs']['tokens'] == {'shape': ['b', 'l'], 'dtype': 'int32'}
  assert lm['dims']['l'] == {'min': 2, 'max': 64, 'meaning': 'sequence length (tokens)'}
  assert lm['preprocessing']['tokenizer'] == {'kind': 'byte'}
  weights = np.load(exports['lm']['out'] / 'weights.npz')
  assert sorted(weights) == sorted(w['name'] for w in lm['weights'])


def test_export_folder_reads_as_a_workdir_for_the_task(exports):
  from jaxlab import config as config_lib, data as data_lib, tasks
  out = str(exports['text']['out'])
  info = data_lib.load_info(out)
  task = tasks.create(config_lib.load_from_workdir(out), info, compute_dtype=np.float32,
                      workdir=out)
  assert task.predict_spec() == {'tokens': ((32,), np.dtype(np.int32))}


def test_savedmodel_runs_in_tensorflow_with_the_same_outputs(exports, tmp_path):
  if importlib.util.find_spec('tensorflow') is None:
    pytest.skip('TensorFlow is not installed (the savedmodel extra)')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  for kind, compared in (('image', 'probabilities'), ('lm', 'next_token')):
    run = exports[kind]
    export_command.main(str(run['workdir']), str(tmp_path / kind), fmt='savedmodel')
    model = tf.saved_model.load(str(tmp_path / kind), tags=['serve'])
    outputs = model.signatures['serving_default'](**run['batch'])
    np.testing.assert_allclose(outputs[compared].numpy(), run['expected'][compared], atol=1e-5)


def test_export_into_a_full_folder_exits_2_and_leaves_it_alone(exports):
  out = exports['image']['out']
  before = sorted(os.listdir(out))
  result = run_cli('export', f'--workdir={exports["image"]["workdir"]}', f'--out={out}')
  assert result.returncode == 2, result.stderr
  assert f'--out={out} exists and is not an empty folder' in result.stderr
  assert sorted(os.listdir(out)) == before


@pytest.mark.parametrize('kwargs, message', [
    (dict(fmt='onnx'), 'Unknown --format=onnx'),
    (dict(platforms='cpu,gpu'), 'Unknown --platforms=cpu,gpu'),
    (dict(out=None), 'pass --out=DIR'),
    (dict(workdir='/nonexistent/run'), 'No config.json in workdir /nonexistent/run'),
])
def test_bad_export_arguments_say_what_to_fix(exports, tmp_path, kwargs, message):
  args = {'workdir': str(exports['image']['workdir']), 'out': str(tmp_path / 'out'), **kwargs}
  with pytest.raises(UserError, match=message):
    export_command.main(args.pop('workdir'), args.pop('out'), **args)
  assert not os.listdir(tmp_path)


def test_a_workdir_without_checkpoints_is_refused(exports, tmp_path):
  workdir = tmp_path / 'untrained'
  workdir.mkdir()
  for name in ('config.json', 'dataset_info.json'):
    (workdir / name).write_text((exports['image']['workdir'] / name).read_text())
  with pytest.raises(UserError, match='No checkpoint in'):
    export_command.main(str(workdir), str(tmp_path / 'out'))
  assert not os.path.exists(tmp_path / 'out')


def test_savedmodel_without_tensorflow_says_how_to_install_it(exports, tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, 'tensorflow', None)  # `import tensorflow` fails
  with pytest.raises(UserError, match=r"pip install 'jaxlab\[savedmodel\]'"):
    export_command.main(str(exports['image']['workdir']), str(tmp_path / 'out'), fmt='savedmodel')
  assert not os.listdir(tmp_path)


def test_a_model_needing_a_fixed_length_is_exported_at_the_trained_one(exports, tmp_path,
                                                                         monkeypatch):
  from jaxlab.inference import forward
  outputs = forward.export_outputs

  def length_dependent(variables, batch, **kwargs):  # Python branches on the length
    assert batch['tokens'].shape[1] > 10
    return outputs(variables, batch, **kwargs)

  monkeypatch.setattr(forward, 'export_outputs', length_dependent)
  signature = export_command.main(str(exports['lm']['workdir']), str(tmp_path / 'out'))
  assert signature['inputs']['tokens']['shape'] == ['b', 64] and 'l' not in signature['dims']


def test_loader_names_what_is_wrong_with_the_inputs(exports):
  from jaxlab.export import exported_model
  model = exported_model.load(exports['image']['out'])
  good = np.zeros((2, 8, 8, 1), np.float32)
  for inputs, message in (({'img': good}, r"unknown \['img'\] and missing \['image'\]"),
                          ({'image': good[..., :0]}, r'shape \(b, 8, 8, 1\), got \(2, 8, 8, 0\)'),
                          ({'image': good[:, :4]}, r'shape \(b, 8, 8, 1\), got \(2, 4, 8, 1\)'),
                          ({'image': good.astype(np.complex64)}, 'must be float32, got complex64')):
    with pytest.raises(ValueError, match=message):
      model(inputs)
  lm = exported_model.load(exports['lm']['out'])
  tokens = np.ones((2, 65), np.int32)
  with pytest.raises(ValueError, match=r'l = 65 is more than the model takes \(64\)'):
    lm({'tokens': tokens, 'segment_ids': tokens, 'positions': tokens})
  with pytest.raises(ValueError, match=r"'tokens' and 'segment_ids' disagree on b"):
    lm({'tokens': tokens, 'segment_ids': tokens[:1], 'positions': tokens})


def test_loader_refuses_an_export_for_other_platforms(exports, tmp_path):
  from jaxlab.export import exported_model
  export_command.main(str(exports['image']['workdir']), str(tmp_path / 'tpu'), platforms='tpu')
  with pytest.raises(RuntimeError, match='exported for tpu, but JAX runs on cpu here'):
    exported_model.load(tmp_path / 'tpu')


def test_predict_spec_is_what_predict_inputs_make_for_images_and_audio():
  from jaxlab.data import DatasetInfo
  from jaxlab.tasks import classification
  config = load_config('digits_cnn')
  for feature, shape, stored in (('image', (8, 8, 1), 'uint8'), ('audio', (16000,), 'float32')):
    info = DatasetInfo('toy', {feature: (shape, stored), 'label': ((), 'int32')}, num_classes=3,
                       sample_rate=16000)
    # Images are read as float32 in the raw pixel range, whatever the set stores.
    assert classification.Classification(config, info).predict_spec() == {
        feature: (shape, np.dtype(np.float32))}


def test_a_sentencepiece_tokenizer_is_copied_and_read_from_the_copy(tmp_path):
  from jaxlab import data as data_lib
  from jaxlab.data import DatasetInfo
  shared = tmp_path / 'shared.model'  # a tokenizer shared between runs: an absolute 'file'
  shared.write_bytes(b'sentencepiece model bytes')
  workdir, out = tmp_path / 'run', tmp_path / 'out'
  workdir.mkdir()
  out.mkdir()
  (workdir / 'config.json').write_text('{"seed": 3}')
  spec = {'kind': 'sentencepiece', 'vocab_size': 512, 'file': str(shared)}
  info = DatasetInfo('toy', {'tokens': ((8,), 'int32')}, vocab_size=512, tokenizer=spec)
  from jaxlab.export import signature as export_signature
  export_signature.copy_workdir_files(str(workdir), info, str(out))
  assert (out / 'tokenizer.model').read_bytes() == b'sentencepiece model bytes'
  assert data_lib.load_info(str(out)).tokenizer == dict(spec, file='tokenizer.model')
  assert (out / 'config.json').read_text() == '{"seed": 3}'
