"""Object detection on the offline shapes-and-digits set: FCOS on a ResNet-18, scored by
COCO's evaluator (mAP, AP50, AP75). No download: the set is drawn once into the cache.

  jaxlab train --config=experiments/shapes_detection.py --workdir=/tmp/jaxlab/shapes_detection
  jaxlab predict --workdir=/tmp/jaxlab/shapes_detection photo.jpg

Your own images with a COCO JSON (COCO_DIR/train.json + COCO_DIR/train/, and
COCO_DIR/test.json + COCO_DIR/test/, or one .json file; docs: Object detection):

  jaxlab train --config=experiments/shapes_detection.py --config.data.name=coco_json --config.data.path=COCO_DIR --workdir=/tmp/jaxlab/my_boxes

4000 training and 500 held-out images of 100-160 pixels, 13 classes (circles, squares,
triangles, the ten digits), stretched to 128 x 128. 1875 steps: about 14.5 minutes on 2
otherwise idle CPU cores (2.2 steps/s), longer on a busy machine; benchmarks/detection.py
measures its COCO mAP and AP50 on the held-out images (benchmarks/RESULTS.md). `:smoke` trains
a tiny detector for a few steps on 48 images, for tests.
"""

from jaxlab import config as config_lib


def get_config(arg=None):
  _, smoke = config_lib.variant(arg)
  c = config_lib.defaults()
  c.task.name = 'detection'  # boxes, classes and scores; COCO mAP
  c.data.name = 'shapes_detection'  # drawn once into data.cache_dir; or coco_json with data.path
  c.data.image_size = 128  # every image is stretched to 128 x 128 (boxes keep their place)
  c.data.max_boxes = 8  # boxes per image in a batch (this set has at most 6)
  c.data.augment = ('crop', 'flip', 'scale_jitter')  # on the device, boxes moved with the pixels
  c.data.batch_size = 32  # images per step
  c.data.eval_batch_size = 100  # 500 test images in 5 batches

  c.model.name = 'fcos'  # ResNet + feature pyramid (P3-P5) + FCOS head
  c.model.backbone = 'resnet18'  # BasicBlocks [2, 2, 2, 2]
  c.model.width = 32  # channels of the first ResNet stage: 32-64-128-256
  c.model.fpn_width = 64  # channels of the pyramid and of the head
  c.model.head_depth = 2  # conv + GroupNorm + relu layers per tower
  c.model.backbone_init = ''  # a jaxlab workdir of a resnet18 classifier to start from

  c.optimizer.name = 'adamw'  # Adam with decoupled weight decay
  c.optimizer.learning_rate = 2e-3  # peak learning rate
  c.optimizer.schedule = 'warmup_cosine'  # linear warmup, cosine decay
  c.optimizer.warmup_percent = 3.0  # of training
  c.optimizer.weight_decay = 1e-4  # on kernels
  c.optimizer.grad_clip_norm = 10.0  # early focal-loss gradients can be large

  c.num_epochs = 15  # passes over the 4000 training images (1875 steps)
  c.steps_per_loop = 1  # one step per compiled call: XLA:CPU runs these convolutions slower in a loop
  c.log_every_steps = 125  # a train record every epoch
  c.eval_every_steps = 0  # COCO evaluation of the 500 test images at the end
  c.checkpoint_every_steps = 0  # at the end
  c.checkpoint.best_metric = 'eval/mAP'  # keep the best checkpoint by COCO mAP
  if smoke:  # seconds, for tests
    c.data.num_train = 48  # the first 48 training images
    c.data.num_test = 16  # and 16 test images
    c.data.batch_size = 8
    c.data.eval_batch_size = 16
    c.data.image_size = 64
    c.model.width = 8
    c.model.fpn_width = 16
    c.model.head_depth = 1
    c.num_epochs = 2  # 12 steps
    c.steps_per_loop = 1
    c.log_every_steps = 6
    c.eval_every_steps = 12
    c.checkpoint_every_steps = 12
  return c
