"""ResNet-18 (CIFAR stem) on CIFAR-10: SGD with Nesterov momentum, warmup and cosine decay,
random crop and flip, label smoothing 0.1 (the usual recipe, ~95% test accuracy).

  jaxlab train --config=experiments/cifar10_resnet18.py --workdir=/tmp/jaxlab/cifar10_resnet18 \\
      --config.data.data_dir=$HOME/tensorflow_datasets

The smoke variant (config argument smoke) trains in seconds on synthetic data.
"""

from jaxlab import config as config_lib


def get_config(arg=None):
  _, smoke = config_lib.variant(arg)  # "smoke" or nothing
  c = config_lib.defaults()
  c.data.name = 'cifar10'  # --config.data.name=synthetic trains on CIFAR-shaped synthetic data
  c.data.synthetic_like = 'cifar10'  # what data.name='synthetic' imitates
  c.data.batch_size = 128  # global batch; scale optimizer.learning_rate with it (0.1 per 128)
  c.data.eval_batch_size = 500  # 10000 test images in 20 batches
  c.data.augment = ('crop', 'flip')  # on the device: pad-4 random crop, horizontal flip
  c.data.mixup_alpha = 0.0  # mixup off: crop + flip is the standard ResNet CIFAR recipe

  c.model.name = 'resnet18'  # BasicBlocks [2, 2, 2, 2], 11.2M parameters with 10 classes
  c.model.stem = 'cifar'  # 3x3 stride-1 stem without max-pool: 32x32 inputs keep their detail
  c.model.width = 64  # channels of the first stage: 64-128-256-512
  c.task.label_smoothing = 0.1  # soft targets: 0.9 on the label, 0.1 spread over all classes

  c.optimizer.name = 'sgd'  # SGD with momentum
  c.optimizer.momentum = 0.9  # heavy-ball coefficient
  c.optimizer.nesterov = True  # Nesterov's look-ahead variant
  c.optimizer.learning_rate = 0.1  # peak lr for batch 128 (x batch / 128 for other batches)
  c.optimizer.schedule = 'warmup_cosine'  # linear warmup, cosine decay to end_factor
  c.optimizer.warmup_percent = 2.0  # ~2 epochs of 100
  c.optimizer.weight_decay = 5e-4  # L2 on kernels (not on BatchNorm scales or biases)

  c.num_epochs = 100  # ~39,000 steps at batch 128
  c.steps_per_loop = 39  # train steps per compiled call; 10 per epoch
  c.log_every_steps = 390  # about one epoch (50000 // 128)
  c.eval_every_steps = 1950  # every 5 epochs

  c.checkpoint_every_steps = 1950  # every 5 epochs
  if smoke:  # seconds on a CPU: synthetic CIFAR-shaped data, a narrow network
    c.data.name = 'synthetic'  # no download needed
    c.data.num_train = 256  # 8 batches of 32 per epoch
    c.data.num_test = 64  # one eval batch
    c.data.batch_size = 32  # small batches for a CPU
    c.data.eval_batch_size = 64  # the whole test split at once
    c.model.width = 8  # 8-16-32-64 channels: ~0.18M parameters
    c.optimizer.learning_rate = 0.05  # 0.1 x 32 / 128 x 2: a short run warms up fast
    c.optimizer.warmup_steps = 4  # a few steps of warmup
    c.num_epochs = 3  # 24 steps
    c.steps_per_loop = 8  # one epoch per compiled call
    c.log_every_steps = 8  # a train record per epoch
    c.eval_every_steps = 24  # evaluate at the end
    c.checkpoint_every_steps = 24  # one checkpoint, at the end
  return c
