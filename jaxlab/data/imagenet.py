"""ImageNet (ILSVRC 2012, TFDS 'imagenet2012') streamed from its ArrayRecord files.

The 1.28M training JPEGs stay encoded in the source; Grain's workers decode them with
the host transforms of `jaxlab.data.image_transforms`: an Inception-style random crop
and flip for training, the 87.5% center crop for the 50,000 validation images (the
test split here), both resized to `data.image_size`. The data set must be prepared
once (`tfds build imagenet2012 --file_format=array_record`, with the archives
downloaded by hand, as TFDS explains); a missing one fails with the not-prepared message.
"""

from jaxlab.data import image_transforms, tfds_source
from jaxlab.data.info import Splits, image_info
from jaxlab.errors import UserError

NAME = 'imagenet2012'


def load(data_config, workdir=None):
  """Splits of encoded images ('train', and 'validation' as the test split) with the
  decoding host transforms; examples are (image_size, image_size, 3) uint8 once transformed."""
  del workdir
  if data_config.placement != 'stream':
    raise UserError(f'--config.data.name={NAME} streams encoded JPEGs that the host decodes '
                    f'and crops, but --config.data.placement={data_config.placement!r}; set '
                    '--config.data.placement=stream (experiments/imagenet_resnet50.py does).')
  train = tfds_source.source(NAME, 'train', data_config.data_dir, decode=False)
  test = tfds_source.source(NAME, 'validation', data_config.data_dir, decode=False)
  label = train.info.features['label']
  size = data_config.image_size
  info = image_info(NAME, (size, size, 3), label.num_classes, class_names=label.names)
  return Splits(info, train, test,
                train_transform=image_transforms.TrainImageTransform(size),
                test_transform=image_transforms.EvalImageTransform(size))
