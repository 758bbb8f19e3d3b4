"""Hugging Face ResNetForImageClassification -> jaxlab's `resnet18/34/50`.

Both are ResNet v1.5 when downsample_in_bottleneck is false (the stride on the 3x3
conv; Hugging Face's default): other placements are refused. BatchNorm running
statistics become jaxlab's model state; the image processor's mean and std become the
model's pixel_mean and pixel_std.
"""

from jaxlab import data as data_lib
from jaxlab.models import resnet as resnet_model
from jaxlab.pretrained import errors, families, hf_vit, tensors

ARCHITECTURES = ('ResNetForImageClassification',)
IMAGE_SIZE = 224


def _depth(config):
  """jaxlab's depth (18, 34, 50) of this layout, or None."""
  bottleneck = config.get('layer_type', 'bottleneck') == 'bottleneck'
  for depth, blocks in resnet_model.STAGE_BLOCKS.items():
    if (depth in resnet_model.BOTTLENECK_DEPTHS) == bottleneck and \
        tuple(config.get('depths', ())) == blocks:
      width = config.get('embedding_size', 64)
      factor = resnet_model.EXPANSION if bottleneck else 1
      if list(config.get('hidden_sizes', ())) == [width * factor * 2 ** s for s in range(4)]:
        return depth
  return None


def describe(checkpoint):
  config = checkpoint.config
  problems = []
  depth = _depth(config)
  if depth is None:
    problems.append(f'layer_type {config.get("layer_type")!r} with depths {config.get("depths")}'
                    f' and hidden_sizes {config.get("hidden_sizes")} (jaxlab has resnet18, 34 '
                    'of basic blocks and resnet50 of bottlenecks, stage widths w, 2w, 4w, 8w '
                    '(x4 for bottlenecks))')
  if config.get('downsample_in_bottleneck') or config.get('downsample_in_first_stage'):
    problems.append('a stride on the first 1x1 conv or in the first stage (jaxlab\'s ResNet is '
                    'v1.5: the stride on the 3x3 conv, from the second stage)')
  if config.get('hidden_act', 'relu') != 'relu':
    problems.append(f'hidden_act {config["hidden_act"]!r}')
  if problems:
    raise errors.refuse(checkpoint.directory, checkpoint.architecture,
                        {'settings jaxlab\'s ResNet lacks': problems},
                        'jaxlab cannot reproduce this model exactly, so it does not import it.')
  names = hf_vit.class_names(config)
  size = _image_size(checkpoint)
  model = dict(name=f'resnet{depth}', stem='imagenet', width=config.get('embedding_size', 64),
               **hf_vit.pixel_stats(checkpoint))
  info = data_lib.image_info('pretrained_images', (size, size, config.get('num_channels', 3)),
                             len(names), class_names=names)
  return families.Model(model, 'classification', info, dict(image_size=size), 'eval/accuracy',
                        'max')


def _image_size(checkpoint):
  crop = checkpoint.json_file('preprocessor_config.json').get('crop_size') or {}
  return crop.get('height', IMAGE_SIZE) if isinstance(crop, dict) else int(crop)


def _norm(hf, jaxlab, features):
  return {f'params/{jaxlab}/scale': tensors.vector(hf + '.weight', features),
          f'params/{jaxlab}/bias': tensors.vector(hf + '.bias', features),
          f'model_state/{jaxlab}/mean': tensors.vector(hf + '.running_mean', features),
          f'model_state/{jaxlab}/var': tensors.vector(hf + '.running_var', features)}


def leaves(checkpoint, model, paths):
  del paths
  config = checkpoint.config
  depth = _depth(config)
  width = config.get('embedding_size', 64)
  channels = config.get('num_channels', 3)
  bottleneck = depth in resnet_model.BOTTLENECK_DEPTHS
  stem = 'resnet.embedder.embedder.'
  result = {'params/stem/kernel': tensors.conv(stem + 'convolution.weight', width, channels, 7),
            **_norm(stem + 'normalization', 'stem_norm', width)}
  block, in_features = 0, width
  for stage, count in enumerate(resnet_model.STAGE_BLOCKS[depth]):
    inner = width * 2 ** stage
    out = inner * (resnet_model.EXPANSION if bottleneck else 1)
    for index in range(count):
      hf = f'resnet.encoder.stages.{stage}.layers.{index}.'
      jx = f'blocks/{block}/'
      convs = ([(in_features, inner, 1), (inner, inner, 3), (inner, out, 1)] if bottleneck
               else [(in_features, inner, 3), (inner, out, 3)])
      for k, (n_in, n_out, size) in enumerate(convs):
        result[f'params/{jx}conv{k + 1}/kernel'] = tensors.conv(
            f'{hf}layer.{k}.convolution.weight', n_out, n_in, size)
        result.update(_norm(f'{hf}layer.{k}.normalization', f'{jx}norm{k + 1}', n_out))
      if index == 0 and (stage > 0 or in_features != out):  # jaxlab's Shortcut.projects
        result[f'params/{jx}shortcut/conv/kernel'] = tensors.conv(
            f'{hf}shortcut.convolution.weight', out, in_features, 1)
        result.update(_norm(f'{hf}shortcut.normalization', f'{jx}shortcut/norm', out))
      block, in_features = block + 1, out
  classes = model.info.num_classes
  result['params/head/kernel'] = tensors.linear('classifier.1.weight', classes, in_features)
  result['params/head/bias'] = tensors.vector('classifier.1.bias', classes)
  return result


def ignored(checkpoint, name):
  del checkpoint
  return name.endswith('num_batches_tracked')
