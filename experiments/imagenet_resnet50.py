"""ResNet-50 on ImageNet (ILSVRC 2012) after Goyal et al. 2017, "Accurate, Large Minibatch
SGD": lr 0.1 x batch / 256 with 5 warmup epochs, 90 epochs (cosine decay here), weight
decay 1e-4, the last BN scale of each block at zero; plus label smoothing 0.1. The JPEGs
stream from TFDS's ArrayRecord files, decoded, cropped and flipped on the host.

  jaxlab train --config=experiments/imagenet_resnet50.py --workdir=/tmp/jaxlab/imagenet_resnet50 \\
      --config.data.data_dir=$HOME/tensorflow_datasets

The smoke variant (config argument smoke) trains a narrow ResNet-50 on synthetic
ImageNet-shaped data in a minute or two on a CPU.
"""

from jaxlab import config as config_lib

STEPS_PER_EPOCH = 1251  # 1,281,167 training images // batch 1024


def get_config(arg=None):
  _, smoke = config_lib.variant(arg)  # "smoke" or nothing
  c = config_lib.defaults()
  c.data.name = 'imagenet2012'  # TFDS imagenet2012 in ArrayRecord format ('synthetic' runs anywhere)
  c.data.synthetic_like = 'imagenet2012'  # data.name='synthetic': 224x224x3, 1000 classes, 1024 images
  c.data.placement = 'stream'  # encoded JPEGs, decoded by Grain's workers while training
  c.data.image_size = 224  # Inception random crop (train) and 87.5% center crop (eval) to 224
  c.data.batch_size = 1024  # global batch (Goyal et al. show up to 8192 with the lr rule)
  c.data.eval_batch_size = 1000  # the 50,000 validation images in 50 batches
  c.data.mixup_alpha = 0.0  # no mixup in this recipe

  c.model.name = 'resnet50'  # Bottlenecks [3, 4, 6, 3], 25.6M parameters
  c.model.stem = 'imagenet'  # 7x7/2 conv and 3x3/2 max-pool
  c.model.width = 64  # channels of the first stage (x4 after each Bottleneck)
  c.model.bn_momentum = 0.9  # running statistics' decay
  c.task.label_smoothing = 0.1  # soft targets: 0.9 on the label, 0.1 spread over all classes

  c.optimizer.name = 'sgd'  # SGD with momentum
  c.optimizer.momentum = 0.9  # heavy-ball coefficient
  c.optimizer.nesterov = False  # plain momentum, as in Goyal et al.
  c.optimizer.learning_rate = 0.4  # 0.1 x 1024 / 256
  c.optimizer.schedule = 'warmup_cosine'  # linear warmup, cosine decay to end_factor
  c.optimizer.warmup_steps = 5 * STEPS_PER_EPOCH  # 5 epochs of warmup
  c.optimizer.weight_decay = 1e-4  # L2 on kernels (not on BatchNorm scales or biases)

  c.num_epochs = 90  # 112,590 steps at batch 1024
  c.steps_per_loop = 100  # train steps per compiled call
  c.log_every_steps = 500  # train metrics record interval
  c.eval_every_steps = 5 * STEPS_PER_EPOCH  # every 5 epochs

  c.checkpoint_every_steps = STEPS_PER_EPOCH  # every epoch
  if smoke:  # a CPU minute: synthetic ImageNet-shaped images, a narrow ResNet-50
    c.data.name = 'synthetic'  # no download needed
    c.data.num_train = 64  # 4 batches of 16 per epoch
    c.data.num_test = 16  # one eval batch
    c.data.batch_size = 16  # small batches for a CPU
    c.data.eval_batch_size = 16  # the whole test split at once
    c.model.width = 8  # 8-16-32-64 inner channels: ~0.6M parameters with 1000 classes
    c.optimizer.learning_rate = 0.05  # a short run: a low peak
    c.optimizer.warmup_steps = 2  # a few steps of warmup
    c.num_epochs = 2  # 8 steps
    c.steps_per_loop = 4  # one epoch per compiled call
    c.log_every_steps = 4  # a train record per epoch
    c.eval_every_steps = 8  # evaluate at the end
    c.checkpoint_every_steps = 8  # one checkpoint, at the end
  return c
