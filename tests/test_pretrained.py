"""jaxlab import and jaxlab.pretrained: Hugging Face checkpoints as jaxlab models.

The references are `transformers` models built from tiny configs with random weights (every
parameter and BatchNorm statistic drawn at random, so a wrongly mapped tensor shows) and
saved with `save_pretrained`; jaxlab's logits must equal PyTorch's.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import safetensors.numpy
import tokenizers
import torch
import transformers
from tokenizers import decoders, models, pre_tokenizers, processors, trainers

from jaxlab.inference import lm_sampler as sample_lib
from jaxlab.inference import sampling
from jaxlab.pretrained import UnmappableCheckpoint, loading, run_import
from tests.conftest import ROOT, read_metrics, restore_params, run_cli

LLAMA = dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
             rms_norm_eps=1e-5, rope_theta=500.0, bos_token_id=1, eos_token_id=2)
TEXT = 'the quick brown fox jumps over the lazy dog and the cat sleeps in the warm sun'
IMAGENET_STATS = dict(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])


def _randomize(model, seed):
  """Every float parameter and buffer random (variances positive), so none is at its
  initial value by chance (zero biases and unit scales hide mapping mistakes)."""
  generator = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
      if tensor.is_floating_point() and 'inv_freq' not in name:
        values = torch.randn(tensor.shape, generator=generator) * 0.3
        tensor.copy_(values.abs() + 0.5 if name.endswith('running_var') else values)
  return model.eval()


def _write_tokenizer(directory):
  """A small BPE tokenizer.json whose ids fit LLAMA's vocabulary (<s> = 1, </s> = 2)."""
  tokenizer = tokenizers.Tokenizer(models.BPE(unk_token='<unk>'))
  tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
  tokenizer.decoder = decoders.Metaspace()
  tokenizer.train_from_iterator([TEXT] * 4, trainers.BpeTrainer(
      vocab_size=LLAMA['vocab_size'], special_tokens=['<unk>', '<s>', '</s>']))
  tokenizer.post_processor = processors.TemplateProcessing(single='<s> $A',
                                                           special_tokens=[('<s>', 1)])
  tokenizer.save(str(directory / 'tokenizer.json'))
  assert tokenizer.get_vocab_size() <= LLAMA['vocab_size']


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
  """{name: (torch model, checkpoint folder)}."""
  root = tmp_path_factory.mktemp('hf')
  built = {
      # GQA, untied head, sharded into several files with an index.
      'llama': (transformers.LlamaForCausalLM(transformers.LlamaConfig(**LLAMA)),
                dict(max_shard_size='20KB')),
      'llama_tied': (transformers.LlamaForCausalLM(transformers.LlamaConfig(
          **LLAMA, tie_word_embeddings=True)), {}),
      'qwen2': (transformers.Qwen2ForCausalLM(transformers.Qwen2Config(
          **dict(LLAMA, rope_theta=10000.0))), {}),
      'vit': (transformers.ViTForImageClassification(transformers.ViTConfig(
          hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
          image_size=16, patch_size=4, num_labels=3)), {}),
      'resnet50': (transformers.ResNetForImageClassification(transformers.ResNetConfig(
          embedding_size=8, hidden_sizes=[32, 64, 128, 256], depths=[3, 4, 6, 3],
          layer_type='bottleneck', num_labels=5)), {}),
  }
  result = {}
  for seed, (name, (model, options)) in enumerate(built.items()):
    _randomize(model, seed)
    if name == 'llama_tied':
      model.tie_weights()
    directory = root / name
    model.save_pretrained(directory, **options)
    result[name] = (model, directory)
  _write_tokenizer(root / 'llama')
  (root / 'vit' / 'preprocessor_config.json').write_text(json.dumps(
      dict(do_normalize=True, image_mean=[0.5] * 3, image_std=[0.5] * 3)))
  (root / 'resnet50' / 'preprocessor_config.json').write_text(json.dumps(
      dict(do_normalize=True, crop_size=dict(height=32, width=32), **IMAGENET_STATS)))
  return result


def _jaxlab_logits(directory, *inputs):
  plan = loading.plan(directory)
  definition, layout = loading.layout(plan, loading.import_mesh())
  variables = loading.read_variables(plan, layout.shapes, layout.shardings)
  logits, _ = definition.apply(variables.params, variables.model_state, inputs, {},
                               train=False)
  return np.asarray(logits)


@pytest.mark.parametrize('name', ['llama', 'llama_tied', 'qwen2'])
def test_decoder_logits_equal_transformers(checkpoints, name):
  model, directory = checkpoints[name]
  tokens = np.random.default_rng(0).integers(0, LLAMA['vocab_size'], (2, 12))
  with torch.no_grad():
    expected = model(torch.tensor(tokens)).logits.numpy()
  np.testing.assert_allclose(_jaxlab_logits(directory, tokens), expected, rtol=1e-4, atol=1e-5)


def test_tied_checkpoint_has_no_head_and_qwen2_has_biases(checkpoints):
  tied = loading.model_config(checkpoints['llama_tied'][1]).model
  qwen = loading.model_config(checkpoints['qwen2'][1]).model
  assert (tied.tie_embeddings, tied.qkv_bias) == (True, False)
  assert (qwen.tie_embeddings, qwen.qkv_bias) == (False, True)
  assert len(list(checkpoints['llama'][1].glob('*.safetensors'))) > 1  # sharded


@pytest.mark.parametrize('name,size,mean,std', [
    ('vit', 16, [0.5] * 3, [0.5] * 3),
    ('resnet50', 32, IMAGENET_STATS['image_mean'], IMAGENET_STATS['image_std'])])
def test_image_logits_equal_transformers(checkpoints, name, size, mean, std):
  """jaxlab's model takes [0, 1] pixels and normalises them as the image processor did."""
  model, directory = checkpoints[name]
  pixels = np.random.default_rng(1).uniform(size=(2, size, size, 3)).astype(np.float32)
  normalized = (pixels - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
  with torch.no_grad():
    expected = model(torch.tensor(normalized.transpose(0, 3, 1, 2))).logits.numpy()
  np.testing.assert_allclose(_jaxlab_logits(directory, pixels), expected, rtol=1e-4,
                             atol=2e-5)


@pytest.fixture(scope='module')
def llama_workdir(checkpoints, tmp_path_factory):
  workdir = tmp_path_factory.mktemp('imported') / 'llama'
  run_import(str(checkpoints['llama'][1]), str(workdir))
  return workdir


def test_greedy_continuation_equals_transformers_generate(checkpoints, llama_workdir):
  run, sampler, tokenizer = sample_lib.load(str(llama_workdir))
  prompt = tokenizer.encode('the quick brown')
  assert prompt[0] == LLAMA['bos_token_id']  # the tokenizer's own post-processing
  ours = sampler.sample(run.variables, prompt, sampling.Settings.create(temperature=0.0,
                                                                        max_tokens=8))
  with torch.no_grad():
    theirs = checkpoints['llama'][0].generate(
        torch.tensor([[int(i) for i in prompt]]), do_sample=False, max_new_tokens=8,
        pad_token_id=0)[0, len(prompt):].tolist()
  eos = LLAMA['eos_token_id']
  assert ours == (theirs[:theirs.index(eos)] if eos in theirs else theirs)
  assert ours


def test_imported_workdir_holds_config_tokenizer_and_step_zero(llama_workdir):
  config = json.loads((llama_workdir / 'config.json').read_text())
  info = json.loads((llama_workdir / 'dataset_info.json').read_text())
  assert config['model']['name'] == 'transformer_lm' and config['task']['name'] == \
      'language_model'
  assert info['tokenizer'] == dict(kind='pretrained', file='tokenizer.json', eos_id=2,
                                   bos_id=1, add_bos=True, pad_id=0)
  assert (llama_workdir / 'tokenizer.json').exists()
  assert sorted(p.name for p in (llama_workdir / 'checkpoints').iterdir()) == ['0']
  assert not list(llama_workdir.parent.glob('*.importing-*'))


def test_sample_command_uses_the_imported_tokenizer(checkpoints, tmp_path):
  workdir = tmp_path / 'llama'
  imported = run_cli('import', f'--source={checkpoints["llama"][1]}', f'--workdir={workdir}',
                     check=True)
  assert 'Imported LlamaForCausalLM' in imported.stdout
  printed = run_cli('sample', f'--workdir={workdir}', '--prompt=the quick brown',
                    '--temperature=0', '--max_tokens=6', check=True).stdout
  run, sampler, tokenizer = sample_lib.load(str(workdir))
  ids = sampler.sample(run.variables, tokenizer.encode('the quick brown'),
                       sampling.Settings.create(temperature=0.0, max_tokens=6))
  assert printed == 'the quick brown' + tokenizer.decode(ids) + '\n'


def _copy(checkpoints, name, tmp_path):
  return pathlib.Path(shutil.copytree(checkpoints[name][1], tmp_path / name))


def _refused(source, workdir):
  with pytest.raises(UnmappableCheckpoint) as raised:
    run_import(str(source), str(workdir))
  assert not workdir.exists() and not list(workdir.parent.glob('*.importing-*'))
  return str(raised.value)


def test_missing_shard_is_refused(checkpoints, tmp_path):
  source = _copy(checkpoints, 'llama', tmp_path)
  shard = sorted(source.glob('*.safetensors'))[-1]
  shard.unlink()
  message = _refused(source, tmp_path / 'out')
  assert 'missing shard files' in message and shard.name in message


def test_unknown_architecture_is_refused(checkpoints, tmp_path):
  source = _copy(checkpoints, 'vit', tmp_path)
  config = json.loads((source / 'config.json').read_text())
  config['architectures'] = ['GPT2LMHeadModel']
  (source / 'config.json').write_text(json.dumps(config))
  message = _refused(source, tmp_path / 'out')
  assert "'GPT2LMHeadModel'" in message and 'LlamaForCausalLM' in message


def test_unmapped_key_is_refused_with_its_shape(checkpoints, tmp_path):
  source = _copy(checkpoints, 'llama_tied', tmp_path)
  tensors = safetensors.numpy.load_file(source / 'model.safetensors')
  tensors['model.extra_projection.weight'] = np.zeros((3, 5), np.float32)
  safetensors.numpy.save_file(tensors, source / 'model.safetensors', metadata={'format': 'pt'})
  message = _refused(source, tmp_path / 'out')
  assert 'unmapped keys: model.extra_projection.weight [3, 5]' in message


def test_wrong_shapes_exit_2_from_the_command_line(checkpoints, tmp_path):
  source = _copy(checkpoints, 'llama_tied', tmp_path)
  config = json.loads((source / 'config.json').read_text())
  config['intermediate_size'] = 40  # the tensors stay 48 wide
  (source / 'config.json').write_text(json.dumps(config))
  workdir = tmp_path / 'out'
  result = run_cli('import', f'--source={source}', f'--workdir={workdir}')
  assert result.returncode == 2, result.stderr
  assert 'wrong shapes: model.layers.0.mlp.down_proj.weight is [32, 48], expected [32, 40]' in \
      result.stderr
  assert len(result.stderr.strip().splitlines()) == 1
  assert not workdir.exists() and not list(tmp_path.glob('*.importing-*'))


def test_sharded_load_gives_each_device_its_slice(checkpoints):
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8',
             JAX_PLATFORMS='cpu')
  result = subprocess.run([sys.executable, '-m', 'tests.pretrained_worker',
                           str(checkpoints['llama'][1])], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report['devices'] == 8
  # fsdp=2 x tensor=4 splits the embedding, the head and every block kernel.
  assert {'params/embed/embedding', 'params/head/kernel', 'params/blocks/mlp/up/kernel',
          'params/blocks/attention/query/kernel'} <= set(report['split'])
  assert report['differing'] == [] and report['over_read'] == []


# ------------------------------------------------------------------ fine-tuning an import

FINETUNE = 'experiments/finetune_pretrained.py'


def _image_folder(root):
  """Two classes a ViT tells apart at once: dark and bright 20 x 20 PNGs (stretched to
  the checkpoint's 16 x 16)."""
  from PIL import Image
  rng = np.random.default_rng(0)
  for name, low in (('bright', 160), ('dark', 0)):
    (root / name).mkdir(parents=True)
    for index in range(12):
      pixels = rng.integers(low, low + 96, (20, 20, 3), dtype=np.uint8)
      Image.fromarray(pixels).save(root / name / f'{index}.png')
  return root


@pytest.mark.slow  # an import, a fine-tuning run and predict, each its own process (~20 s)
def test_imported_vit_fine_tunes_on_an_image_folder_in_one_command(checkpoints, tmp_path):
  imported, workdir = tmp_path / 'vit', tmp_path / 'finetuned'
  run_import(str(checkpoints['vit'][1]), str(imported))
  images = _image_folder(tmp_path / 'images')
  trained = run_cli('train', f'--config={FINETUNE}:{imported}', f'--config.data.path={images}',
                    f'--workdir={workdir}', '--config.data.num_workers=0',
                    '--config.data.batch_size=8', '--config.data.validation_split=0.25',
                    '--config.num_epochs=4', '--config.steps_per_loop=2',
                    '--config.log_every_steps=2', '--config.optimizer.learning_rate=1e-3',
                    '--config.progress=False', check=True)
  # The import's backbone in, a fresh two-class head (the checkpoint had three classes).
  assert 'arrays restored, 2 fresh (head/bias, head/kernel)' in trained.stdout
  params, _ = restore_params(workdir)
  assert params['head']['kernel'].shape == (32, 2)
  records = read_metrics(workdir)
  assert [r['eval/accuracy'] for r in records if 'eval/accuracy' in r][-1] == 1.0
  losses = [r['train/loss'] for r in records if 'train/loss' in r]
  assert losses[-1] < losses[0]
  predicted = run_cli('predict', f'--workdir={workdir}', images / 'dark' / '0.png',
                      check=True).stdout
  assert predicted.split()[1] == 'dark'


@pytest.mark.slow  # an import, a fine-tuning run and sample, each its own process (~20 s)
def test_imported_llama_fine_tunes_on_text_files_with_its_own_tokenizer(checkpoints,
                                                                        llama_workdir,
                                                                        tmp_path):
  texts = tmp_path / 'texts'
  texts.mkdir()
  for index in range(16):
    (texts / f'{index}.txt').write_text(f'{TEXT} number {index}\n')
  workdir = tmp_path / 'finetuned'
  trained = run_cli('train', f'--config={FINETUNE}:{llama_workdir}', f'--config.data.path={texts}',
                    f'--workdir={workdir}', '--config.data.seq_len=32',
                    '--config.data.batch_size=4', '--config.num_epochs=6',
                    '--config.steps_per_loop=3', '--config.log_every_steps=3',
                    '--config.optimizer.learning_rate=3e-3',
                    '--config.optimizer.frozen=blocks/.*', '--config.progress=False', check=True)
  assert 'arrays restored.' in trained.stdout
  imported, _ = restore_params(llama_workdir)
  tuned, _ = restore_params(workdir)
  # Frozen layers are the import's, bit for bit: the run started from its weights.
  for path, array in _flat(imported['blocks']).items():
    np.testing.assert_array_equal(_flat(tuned['blocks'])[path], array)
  assert not np.array_equal(tuned['embed']['embedding'], imported['embed']['embedding'])
  losses = [r['train/loss'] for r in read_metrics(workdir) if 'train/loss' in r]
  assert losses[-1] < losses[0]
  # The checkpoint's tokenizer came along: the new workdir samples with it, alone.
  info = json.loads((workdir / 'dataset_info.json').read_text())
  assert info['tokenizer']['kind'] == 'pretrained' and info['vocab_size'] == LLAMA['vocab_size']
  assert (workdir / 'tokenizer.json').read_bytes() == (llama_workdir / 'tokenizer.json').read_bytes()
  printed = run_cli('sample', f'--workdir={workdir}', '--prompt=the quick brown',
                    '--temperature=0', '--max_tokens=6', check=True).stdout
  assert printed.startswith('the quick brown')


def _flat(tree, prefix=''):
  if isinstance(tree, dict):
    return {k: v for key, value in tree.items() for k, v in _flat(value, f'{prefix}{key}/').items()}
  return {prefix[:-1]: np.asarray(tree)}


def test_pretrained_tokenizer_needs_the_workdir_of_an_import_that_has_one(llama_workdir,
                                                                          tmp_path):
  from jaxlab.data import pretrained_tokenizer
  from jaxlab.errors import UserError
  with pytest.raises(UserError, match='--config.data.tokenizer_from=DIR'):
    pretrained_tokenizer.from_imported('', None)
  with pytest.raises(UserError, match='is not a workdir that `jaxlab import` wrote'):
    pretrained_tokenizer.from_imported(str(tmp_path), None)
  with pytest.raises(UserError, match='holds no imported tokenizer'):
    pretrained_tokenizer.from_imported(str(ROOT / 'tests/fixtures/imported/vit'), None)
  spec, tokenizer = pretrained_tokenizer.from_imported(str(llama_workdir), str(tmp_path))
  assert spec['vocab_size'] == tokenizer.vocab_size == LLAMA['vocab_size']
  assert (tmp_path / 'tokenizer.json').read_bytes() == (llama_workdir / 'tokenizer.json').read_bytes()
