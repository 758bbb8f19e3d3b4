"""Hugging Face ViT (ViTForImageClassification, ViTModel) -> jaxlab's `vit`.

Differences bridged exactly: Hugging Face adds a position embedding to the class token
too (jaxlab adds them to the patches only), so the class token is stored with its
position embedding added; its patch conv is jaxlab's dense layer on flattened
(row, column, channel) patches; its GELU is exact and its LayerNorm epsilon 1e-12
(model options); its image processor's mean and std become the model's pixel_mean and
pixel_std, since jaxlab feeds models [0, 1] pixels.
"""

import numpy as np

from jaxlab import data as data_lib
from jaxlab.models import vit as vit_model
from jaxlab.pretrained import errors, families, tensors

ARCHITECTURES = ('ViTForImageClassification', 'ViTModel')
APPROXIMATE_GELUS = ('gelu_new', 'gelu_pytorch_tanh', 'gelu_fast')


def _prefix(checkpoint):
  return 'vit.' if checkpoint.architecture == 'ViTForImageClassification' else ''


def describe(checkpoint):
  config = checkpoint.config
  act = config.get('hidden_act', 'gelu')
  if act not in ('gelu',) + APPROXIMATE_GELUS:
    raise errors.refuse(checkpoint.directory, checkpoint.architecture,
                        {'settings vit lacks': [f'hidden_act {act!r}']},
                        'jaxlab\'s ViT has a GELU MLP only.')
  width, patch = config['hidden_size'], config['patch_size']
  size, channels = _image_size(config), config.get('num_channels', 3)
  names = class_names(config)
  model = dict(name='vit', variant=_variant(width, patch), width=width,
               depth=config['num_hidden_layers'], mlp_dim=config['intermediate_size'],
               num_heads=config['num_attention_heads'], posemb='learn', pool='cls',
               norm_eps=float(config.get('layer_norm_eps', 1e-12)),
               gelu_approximate=act != 'gelu', **pixel_stats(checkpoint))
  info = data_lib.image_info('pretrained_images', (size, size, channels), len(names),
                             class_names=names)
  notes = ('ViTModel has no classifier: the head starts at zero',) \
      if checkpoint.architecture == 'ViTModel' else ()
  return families.Model(model, 'classification', info, dict(image_size=size),
                        'eval/accuracy', 'max', notes)


def _image_size(config):
  size = config.get('image_size', 224)
  return size[0] if isinstance(size, (list, tuple)) else size


def _variant(width, patch):
  """big_vision's size name of this width where one matches (the sizes are explicit)."""
  names = [name for name, sizes in vit_model.SIZES.items() if sizes[0] == width]
  return f'{(names or ["mu"])[0]}/{patch}'


def class_names(config):
  """The label names in id order, from config.json's id2label (2 unnamed classes by
  default, as Hugging Face's num_labels)."""
  id2label = config.get('id2label') or {}
  count = len(id2label) or config.get('num_labels', 2)
  return tuple(str(id2label.get(str(i), id2label.get(i, f'LABEL_{i}'))) for i in range(count))


def pixel_stats(checkpoint):
  """pixel_mean / pixel_std from preprocessor_config.json (rescale to [0, 1] assumed)."""
  processor = checkpoint.json_file('preprocessor_config.json')
  if not processor.get('do_normalize', bool(processor)):
    return {}
  return dict(pixel_mean=tuple(processor['image_mean']), pixel_std=tuple(processor['image_std']))


def leaves(checkpoint, model, paths):
  config, p = checkpoint.config, _prefix(checkpoint)
  d, m = config['hidden_size'], config['intermediate_size']
  heads, patch = config['num_attention_heads'], config['patch_size']
  channels, k = config.get('num_channels', 3), d // heads
  grid = (_image_size(config) // patch) ** 2
  pos = tensors.Source(p + 'embeddings.position_embeddings', (1, grid + 1, d))
  cls = tensors.Source(p + 'embeddings.cls_token', (1, 1, d))
  qkv_bias = config.get('qkv_bias', True)

  def layer(i):
    q = f'{p}encoder.layer.{i}.'
    found = {'attention/out/kernel': tensors.linear(q + 'attention.output.dense.weight', d, d,
                                                    in_split=(heads, k)),
             'attention/out/bias': tensors.vector(q + 'attention.output.dense.bias', d),
             'mlp/up/kernel': tensors.linear(q + 'intermediate.dense.weight', m, d),
             'mlp/up/bias': tensors.vector(q + 'intermediate.dense.bias', m),
             'mlp/down/kernel': tensors.linear(q + 'output.dense.weight', d, m),
             'mlp/down/bias': tensors.vector(q + 'output.dense.bias', d)}
    for jaxlab_name, hf_name in (('attention_norm', 'layernorm_before'),
                                 ('mlp_norm', 'layernorm_after')):
      found[f'{jaxlab_name}/scale'] = tensors.vector(f'{q}{hf_name}.weight', d)
      found[f'{jaxlab_name}/bias'] = tensors.vector(f'{q}{hf_name}.bias', d)
    for name in ('query', 'key', 'value'):
      found[f'attention/{name}/kernel'] = tensors.linear(
          f'{q}attention.attention.{name}.weight', d, d, out_split=(heads, k))
      found[f'attention/{name}/bias'] = tensors.vector(
          f'{q}attention.attention.{name}.bias', d, (heads, k)) if qkv_bias else \
          tensors.zeros((heads, k))
    return found

  num_classes = model.info.num_classes
  result = {
      'params/embedding/kernel': tensors.Rearranged(
          tensors.Source(p + 'embeddings.patch_embeddings.projection.weight',
                         (d, channels, patch, patch)), (2, 3, 1, 0),
          (patch * patch * channels, d)),
      'params/embedding/bias': tensors.vector(p + 'embeddings.patch_embeddings.projection.bias',
                                              d),
      'params/posemb': tensors.Computed((pos,), (1, grid, d), lambda pos: pos[:, 1:]),
      'params/cls': tensors.Computed((cls, pos), (1, 1, d),
                                     lambda cls, pos: np.asarray(cls, np.float32)
                                     + np.asarray(pos[:, :1], np.float32)),
      'params/encoder_norm/scale': tensors.vector(p + 'layernorm.weight', d),
      'params/encoder_norm/bias': tensors.vector(p + 'layernorm.bias', d),
  }
  if checkpoint.architecture == 'ViTForImageClassification':
    result['params/head/kernel'] = tensors.linear('classifier.weight', num_classes, d)
    result['params/head/bias'] = tensors.vector('classifier.bias', num_classes)
  else:  # a backbone: the head starts at zero, as jaxlab's ViT initialises it
    result['params/head/kernel'] = tensors.zeros((d, num_classes))
    result['params/head/bias'] = tensors.zeros((num_classes,))
  result.update(families.layer_leaves(layer, paths, 'params/blocks',
                                      config['num_hidden_layers']))
  return result


def ignored(checkpoint, name):
  """ViTModel's pooler (a dense + tanh on the class token that the classifier never uses)."""
  return checkpoint.architecture == 'ViTModel' and name.startswith('pooler.')
