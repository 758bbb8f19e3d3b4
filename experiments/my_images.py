"""Your own images, one folder per class, with a small CNN.

  jaxlab train --config=experiments/my_images.py --config.data.path=IMAGE_DIR --workdir=/tmp/jaxlab/my_images
  jaxlab predict --workdir=/tmp/jaxlab/my_images photo.jpg

IMAGE_DIR/<class>/*.jpg (or .jpeg, .png, .bmp, .gif, .webp; 20% held out for eval by
data.validation_split), or IMAGE_DIR/train/<class>/ and IMAGE_DIR/test/<class>/: as
Keras's `image_dataset_from_directory` (classes in alphabetical order; docs: Your files).
Images are decoded as they stream (a broken file is skipped and counted) and stretched to
data.image_size; `predict` prints the class names. `:smoke` (for tests) trains a tiny CNN
on 16x16 images for a few steps: `--config=experiments/my_images.py:smoke`.
"""

from jaxlab import config as config_lib


def get_config(arg=None):
  _, smoke = config_lib.variant(arg, ('cnn',), 'cnn')
  c = config_lib.defaults()
  c.data.name = 'image_folder'  # DIR/<class>/*.jpg; give --config.data.path=DIR
  c.data.image_size = 64  # every image becomes 64 x 64
  c.data.resize_mode = 'stretch'  # or center_crop, or random_crop (with placement=stream)
  c.data.color_mode = 'rgb'  # or grayscale
  c.data.placement = 'stream'  # decoded by Grain's workers as it trains
  c.data.augment = ('flip',)  # on-device random left-right flips
  c.data.batch_size = 32  # examples per step

  c.model.name = 'cnn'
  c.model.conv_features = (32, 64, 128)  # 3x3 convs, each followed by 2x2 max-pooling
  c.model.pool = 'max'
  c.model.dense_features = (128,)
  c.model.dropout_rate = 0.2

  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1e-3  # peak learning rate
  c.optimizer.schedule = 'warmup_cosine'  # linear warmup, cosine decay
  c.optimizer.warmup_percent = 5.0  # of training

  c.num_epochs = 20  # passes over the training images
  c.steps_per_loop = 20  # steps per compiled call
  c.log_every_steps = 20  # train metrics interval
  c.eval_every_steps = 200  # evaluation interval
  c.checkpoint_every_steps = 200  # with the evaluation
  if smoke:  # seconds, for tests
    c.data.image_size = 16
    c.data.batch_size = 8
    c.data.num_workers = 0  # read in this process: starting workers costs seconds
    c.model.conv_features = (8,)
    c.model.dense_features = (16,)
    c.model.dropout_rate = 0.0
    c.num_epochs = 2
    c.steps_per_loop = 4
    c.log_every_steps = 4
    c.eval_every_steps = 0
    c.checkpoint_every_steps = 0
  return c
