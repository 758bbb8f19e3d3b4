"""FCOS with a ResNet-18 and a feature pyramid on PASCAL VOC 2007 (TFDS voc/2007:
trainval for training, the 4952 test images for eval), scored by COCO's evaluator (its
AP50 is close to VOC's mAP@0.5). The JPEGs stream from TFDS's ArrayRecord files, decoded
and stretched to 384 x 384 on the host (no TensorFlow).

  jaxlab train --config=experiments/voc_fcos_r18.py --workdir=/tmp/jaxlab/voc_fcos_r18 \\
      --config.data.data_dir=$HOME/tensorflow_datasets

Reference figure: CenterNet's ResNet-18 at 384 x 384, trained on VOC 07+12 with an
ImageNet backbone, 75.7 mAP@0.5 on VOC 2007 test (Zhou et al. 2019, "Objects as Points",
Table 6). This recipe trains on VOC 2007 trainval alone (under half those images), so
expect less; start the backbone from an ImageNet run (--config.model.backbone_init=DIR of
a resnet18 classifier), as the reference does; from scratch expect far less. Prepare the data once with `tfds build voc/2007 --file_format=array_record`. The
smoke variant trains a tiny detector on the offline shapes set for a few steps.
"""

from jaxlab import config as config_lib

STEPS_PER_EPOCH = 156  # 5011 trainval images // batch 32


def get_config(arg=None):
  _, smoke = config_lib.variant(arg)  # "smoke" or nothing
  c = config_lib.defaults()
  c.task.name = 'detection'  # boxes, classes and scores; COCO mAP and AP50
  c.data.name = 'voc'  # TFDS voc/2007: train+validation, and test as the test split
  c.data.placement = 'stream'  # encoded JPEGs, decoded by Grain's workers while training
  c.data.image_size = 384  # every image stretched to 384 x 384 (boxes keep their place)
  c.data.max_boxes = 48  # boxes per image in a batch (VOC 2007 images hold up to 42)
  c.data.augment = ('crop', 'flip', 'scale_jitter')  # on the device, boxes moved with the pixels
  c.data.batch_size = 32  # images per step
  c.data.eval_batch_size = 64  # the 4952 test images in 78 batches

  c.model.name = 'fcos'  # ResNet + feature pyramid (P3-P5) + FCOS head
  c.model.backbone = 'resnet18'  # BasicBlocks [2, 2, 2, 2]
  c.model.width = 64  # channels of the first stage: 64-128-256-512
  c.model.fpn_width = 128  # channels of the pyramid and of the head
  c.model.head_depth = 4  # conv + GroupNorm + relu layers per tower
  c.model.backbone_init = ''  # a jaxlab ImageNet resnet18 workdir to start from

  c.optimizer.name = 'sgd'  # SGD with momentum
  c.optimizer.momentum = 0.9  # heavy-ball coefficient
  c.optimizer.learning_rate = 0.02  # peak learning rate at batch 32
  c.optimizer.schedule = 'warmup_cosine'  # linear warmup, cosine decay
  c.optimizer.warmup_steps = 500  # about 3 epochs
  c.optimizer.weight_decay = 1e-4  # on kernels
  c.optimizer.grad_clip_norm = 10.0  # early focal-loss gradients can be large

  c.num_epochs = 60  # ~9,400 steps
  c.steps_per_loop = 50  # train steps per compiled call (on accelerators)
  c.log_every_steps = 156  # about one epoch
  c.eval_every_steps = 1560  # every 10 epochs
  c.checkpoint_every_steps = 1560  # with the evaluation
  c.checkpoint.best_metric = 'eval/AP50'  # keep the best checkpoint by AP50 (VOC's figure)
  if smoke:  # seconds on a CPU: the offline shapes set, a tiny detector
    c.data.name = 'shapes_detection'  # drawn once into data.cache_dir: no download
    c.data.placement = 'auto'  # small: held on the device
    c.data.image_size = 64
    c.data.max_boxes = 8
    c.data.num_train = 32
    c.data.num_test = 16
    c.data.batch_size = 8
    c.data.eval_batch_size = 16
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
