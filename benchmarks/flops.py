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


def workload_flops(workload):
  """FLOPs of one training step of a benchmark workload (benchmarks.peers.common)."""
  if workload.model == 'mlp':
    return train_step_flops(mlp_layer_flops(workload.batch_size, [784, 128, 10]))
  return train_step_flops(cnn_layer_flops(workload.batch_size, (28, 28), 1, (32, 64), (256,), 10))
