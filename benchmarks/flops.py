"""Analytic FLOPs of one training step (multiply-adds count 2), from the model's layers.

Forward: every matmul and convolution. Backward: the gradient with respect to the
weights (as many FLOPs as the forward) and with respect to the layer input (the
same again), except for the first layer, whose input needs no gradient.
Element-wise work (activations, pooling, the optimizer) is left out: it is small
and does not run on the matrix units whose peak we compare against.
"""


def mlp_layer_flops(batch, sizes):
  """Forward FLOPs of each dense layer of an MLP with layer widths `sizes`."""
  return [2 * batch * fan_in * fan_out for fan_in, fan_out in zip(sizes, sizes[1:])]


def cnn_layer_flops(batch, image_hw, channels, conv_features, dense_features, num_classes,
                    kernel=3):
  """Forward FLOPs of each layer of jaxlab's CNN (SAME convs, 2x2 pooling after each)."""
  height, width = image_hw
  flops = []
  for features in conv_features:
    flops.append(2 * batch * height * width * kernel * kernel * channels * features)
    channels = features
    height, width = height // 2, width // 2
  sizes = [height * width * channels, *dense_features, num_classes]
  return flops + mlp_layer_flops(batch, sizes)


def train_step_flops(layer_flops):
  forward = sum(layer_flops)
  weight_grads = forward
  input_grads = forward - layer_flops[0]
  return forward + weight_grads + input_grads


def resnet18_layer_flops(batch, image_hw=32, num_classes=10, width=64):
  """Forward FLOPs of each layer of ResNet-18 with the CIFAR stem (3x3/1, no pool):
  the stem, two 3x3 convs per BasicBlock, a 1x1 strided projection where a stage
  starts, the head."""
  flops = [2 * batch * image_hw ** 2 * 9 * 3 * width]
  size, channels = image_hw, width
  for stage in range(4):
    features = width * 2 ** stage
    for block in range(2):
      if stage > 0 and block == 0:
        size //= 2
        flops.append(2 * batch * size ** 2 * channels * features)  # the projection
      flops.append(2 * batch * size ** 2 * 9 * channels * features)
      flops.append(2 * batch * size ** 2 * 9 * features * features)
      channels = features
  return flops + mlp_layer_flops(batch, [channels, num_classes])


def transformer_step_flops(batch, seq_len, vocab_size, num_layers, embed_dim, mlp_dim):
  """FLOPs of one training step of a decoder (untied head, full heads): 3x the forward
  matmuls (the embedding lookup is none). Attention's scores and weighted values count
  in full, L x L per head, as XLA and PyTorch's CPU kernels compute them."""
  tokens = batch * seq_len
  per_layer = 2 * tokens * (4 * embed_dim ** 2 + 3 * embed_dim * mlp_dim)
  attention = 2 * 2 * tokens * seq_len * embed_dim
  forward = num_layers * (per_layer + attention) + 2 * tokens * embed_dim * vocab_size
  return 3 * forward


def workload_flops(workload):
  """FLOPs of one training step of a benchmark workload (benchmarks.peers.common)."""
  options = dict(workload.options)
  if workload.model == 'resnet18':
    return train_step_flops(resnet18_layer_flops(workload.batch_size,
                                                 num_classes=options['num_classes']))
  if workload.model == 'transformer_lm':
    return transformer_step_flops(workload.batch_size, options['seq_len'],
                                  options['vocab_size'], options['num_layers'],
                                  options['embed_dim'], options['mlp_dim'])
  if workload.model == 'mlp':
    return train_step_flops(mlp_layer_flops(workload.batch_size, [784, 128, 10]))
  return train_step_flops(cnn_layer_flops(workload.batch_size, (28, 28), 1, (32, 64), (256,), 10))
