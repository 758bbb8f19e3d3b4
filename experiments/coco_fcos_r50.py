"""FCOS with a ResNet-50 and a feature pyramid on COCO 2017 (TFDS coco/2017), scored by
COCO's evaluator on val2017. The JPEGs stream from TFDS's ArrayRecord files, decoded and
stretched to 512 x 512 on the host (no TensorFlow); flips, random resized crops and scale
jitter move the boxes with the pixels on the device.

  jaxlab train --config=experiments/coco_fcos_r50.py --workdir=/tmp/jaxlab/coco_fcos_r50 \\
      --config.data.data_dir=$HOME/tensorflow_datasets

Reference figure: FCOS R-50-FPN, 1x schedule (12 epochs) at 800-pixel shorter sides, about 38.7
box AP on val2017 (Tian et al. 2019, the AdelaiDet model zoo's FCOS_R_50_1x). This recipe
uses 512 x 512 stretched inputs, 3 pyramid levels and a 2-conv head, so expect a few
points less; start the backbone from an ImageNet run (--config.model.backbone_init=DIR
of experiments/imagenet_resnet50.py) as the reference does. Prepare the data once with
`tfds build coco/2017 --file_format=array_record`. The smoke variant trains a tiny
detector on the offline shapes set for a few steps.
"""

from jaxlab import config as config_lib

STEPS_PER_EPOCH = 7392  # 118,287 training images // batch 16


def get_config(arg=None):
  _, smoke = config_lib.variant(arg)  # "smoke" or nothing
  c = config_lib.defaults()
  c.task.name = 'detection'  # boxes, classes and scores; COCO mAP
  c.data.name = 'coco'  # TFDS coco/2017: train, and validation (val2017) as the test split
  c.data.placement = 'stream'  # encoded JPEGs, decoded by Grain's workers while training
  c.data.image_size = 512  # every image stretched to 512 x 512 (boxes keep their place)
  c.data.max_boxes = 100  # boxes per image in a batch (COCO images hold up to 93 non-crowd)
  c.data.augment = ('crop', 'flip', 'scale_jitter')  # on the device, boxes moved with the pixels
  c.data.batch_size = 16  # images per step, as the reference
  c.data.eval_batch_size = 50  # val2017's 5000 images in 100 batches

  c.model.name = 'fcos'  # ResNet + feature pyramid (P3-P5) + FCOS head
  c.model.backbone = 'resnet50'  # Bottlenecks [3, 4, 6, 3]
  c.model.width = 64  # channels of the first stage (x4 after each Bottleneck)
  c.model.fpn_width = 256  # channels of the pyramid and of the head, as the reference
  c.model.head_depth = 4  # conv + GroupNorm + relu layers per tower, as the reference
  c.model.backbone_init = ''  # a jaxlab ImageNet ResNet-50 workdir (experiments/imagenet_resnet50.py)

  c.optimizer.name = 'sgd'  # SGD with momentum, as the reference
  c.optimizer.momentum = 0.9  # heavy-ball coefficient
  c.optimizer.learning_rate = 0.01  # the reference's at batch 16
  c.optimizer.schedule = 'warmup_cosine'  # linear warmup, cosine decay
  c.optimizer.warmup_steps = 1000  # the reference's warmup
  c.optimizer.weight_decay = 1e-4  # on kernels
  c.optimizer.grad_clip_norm = 10.0  # early focal-loss gradients can be large

  c.num_epochs = 12  # the 1x schedule: ~88,700 steps
  c.steps_per_loop = 50  # train steps per compiled call (on accelerators)
  c.log_every_steps = 500  # train metrics record interval
  c.eval_every_steps = STEPS_PER_EPOCH  # COCO evaluation every epoch
  c.checkpoint_every_steps = STEPS_PER_EPOCH  # every epoch
  c.checkpoint.best_metric = 'eval/mAP'  # keep the best checkpoint by COCO mAP
  if smoke:  # seconds on a CPU: the offline shapes set, a tiny detector
    c.data.name = 'shapes_detection'  # drawn once into data.cache_dir: no download
    c.data.placement = 'auto'  # small: held on the device
    c.data.image_size = 64
    c.data.max_boxes = 8
    c.data.num_train = 32
    c.data.num_test = 16
    c.data.batch_size = 8
    c.data.eval_batch_size = 16
    c.model.backbone = 'resnet18'  # a smaller backbone compiles faster
    c.model.width = 8
    c.model.fpn_width = 16
    c.model.head_depth = 1
    c.optimizer.warmup_steps = 2
    c.num_epochs = 1  # 4 steps
    c.steps_per_loop = 1
    c.log_every_steps = 2
    c.eval_every_steps = 4
    c.checkpoint_every_steps = 4
  return c
