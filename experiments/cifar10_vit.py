"""ViT-S/4 on CIFAR-10 from scratch: 8 x 8 patches of 4 x 4 pixels, AdamW with warmup and
cosine decay, random crop and flip, mixup 0.2 and label smoothing 0.1.

  jaxlab train --config=experiments/cifar10_vit.py --workdir=/tmp/jaxlab/cifar10_vit \\
      --config.data.data_dir=$HOME/tensorflow_datasets

The smoke variant (config argument smoke) trains in seconds on synthetic data.
"""

from jaxlab import config as config_lib


def get_config(arg=None):
  _, smoke = config_lib.variant(arg)  # "smoke" or nothing
  c = config_lib.defaults()
  c.data.name = 'cifar10'  # --config.data.name=synthetic trains on CIFAR-shaped synthetic data
  c.data.synthetic_like = 'cifar10'  # what data.name='synthetic' imitates
  c.data.batch_size = 256  # global batch
  c.data.eval_batch_size = 500  # 10000 test images in 20 batches
  c.data.augment = ('crop', 'flip')  # on the device: pad-4 random crop, horizontal flip
  c.data.mixup_alpha = 0.2  # mixup of each batch with itself rolled by one, r ~ Beta(0.2, 0.2)

  c.model.name = 'vit'  # Vision Transformer (jaxlab/models/vit.py)
  c.model.variant = 'S/4'  # width 384, 12 blocks, 6 heads, MLP 1536; 4 x 4 patches: 64 tokens
  c.model.posemb = 'learn'  # learned position embeddings ('sincos2d': fixed)
  c.model.pool = 'gap'  # classify the mean of the patch tokens ('cls': a class token)
  c.model.dropout_rate = 0.0  # mixup, smoothing and augmentation regularise instead
  c.task.label_smoothing = 0.1  # soft targets: 0.9 on the label, 0.1 spread over all classes

  c.optimizer.name = 'adamw'  # Adam with decoupled weight decay
  c.optimizer.learning_rate = 1e-3  # peak learning rate for batch 256
  c.optimizer.b2 = 0.999  # second-moment decay
  c.optimizer.schedule = 'warmup_cosine'  # linear warmup, cosine decay to end_factor
  c.optimizer.warmup_percent = 5.0  # 10 of 200 epochs
  c.optimizer.weight_decay = 0.05  # decoupled, on kernels only
  c.optimizer.grad_clip_norm = 1.0  # global-norm clipping steadies the early steps

  c.num_epochs = 200  # ~39,000 steps at batch 256
  c.steps_per_loop = 39  # train steps per compiled call; 5 per epoch
  c.log_every_steps = 195  # one epoch (50000 // 256)
  c.eval_every_steps = 1950  # every 10 epochs

  c.checkpoint_every_steps = 1950  # every 10 epochs
  if smoke:  # seconds on a CPU: synthetic CIFAR-shaped data, a two-block ViT
    c.data.name = 'synthetic'  # no download needed
    c.data.num_train = 256  # 8 batches of 32 per epoch
    c.data.num_test = 64  # one eval batch
    c.data.batch_size = 32  # small batches for a CPU
    c.data.eval_batch_size = 64  # the whole test split at once
    c.model.variant = 'mu/4'  # width 32, 2 heads, MLP 128
    c.model.depth = 2  # two blocks instead of mu's one
    c.optimizer.learning_rate = 3e-3  # a short run: a higher peak
    c.optimizer.warmup_steps = 4  # a few steps of warmup
    c.num_epochs = 3  # 24 steps
    c.steps_per_loop = 8  # one epoch per compiled call
    c.log_every_steps = 8  # a train record per epoch
    c.eval_every_steps = 24  # evaluate at the end
    c.checkpoint_every_steps = 24  # one checkpoint, at the end
  return c
