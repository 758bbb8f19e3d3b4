"""Fine-tuning a trained digits_cnn on a few digits: its weights in, a fresh head.

  jaxlab train --config=experiments/digits_cnn.py --workdir=/tmp/jaxlab/digits_cnn
  jaxlab train --config=experiments/finetune_digits.py --workdir=/tmp/jaxlab/finetune_digits
  jaxlab train --config=experiments/finetune_digits.py:lora --workdir=/tmp/jaxlab/finetune_lora
  jaxlab export --workdir=/tmp/jaxlab/finetune_lora --out=/tmp/jaxlab/finetune_lora_export --merge_lora

The second run starts from the first one's best checkpoint (init.from_workdir), keeps its
convolutions frozen (no optimizer state for them), trains its dense layer at a tenth of
the learning rate and a freshly initialised head (init.reset) on 200 training examples.
`:lora` instead freezes every base weight and trains rank-4 LoRA adapters (through
qwix) on the dense layer, plus the fresh head; `jaxlab export --merge_lora` folds the
adapters into the weights. `:smoke` (alone or as `lora,smoke`) shrinks it to seconds;
tests point init.from_workdir at a smoke run of digits_cnn.
"""

from jaxlab import config as config_lib

SOURCE = '/tmp/jaxlab/digits_cnn'  # where digits_cnn's documented command trains


def get_config(arg=None):
  mode, smoke = config_lib.variant(arg, ('head', 'lora'), 'head')
  c = config_lib.defaults()
  c.data.name = 'digits'
  c.data.num_train = 200  # few labelled examples: what fine-tuning is for
  c.data.batch_size = 40

  c.model.name = 'cnn'  # digits_cnn's model, as the source was trained
  c.model.conv_features = (32, 64)
  c.model.pool = 'max'
  c.model.dense_features = (128,)
  c.model.dropout_rate = 0.0

  c.init.from_workdir = SOURCE  # the trained run whose weights start this one
  c.init.checkpoint = 'best'
  c.init.reset = ('head/.*',)  # a fresh classifier
  if mode == 'lora':
    c.lora.rank = 4  # adapters on the dense layer; base weights frozen, the reset head trains
    c.lora.alpha = 8.0
    c.lora.modules = 'dense/.*'
  else:
    c.optimizer.frozen = ('convs/.*',)
    c.optimizer.lr_multipliers = ('dense/.*=0.1',)

  c.optimizer.name = 'adamw'
  c.optimizer.learning_rate = 1e-3
  c.optimizer.weight_decay = 1e-4  # never reaches frozen parameters

  c.num_epochs = 20
  c.steps_per_loop = 5  # one epoch (200 // 40) per compiled call
  c.log_every_steps = 5
  c.eval_every_steps = 50
  c.checkpoint_every_steps = 50
  if smoke:  # seconds, for tests
    c.num_epochs = 2
    c.eval_every_steps = 10
    c.checkpoint_every_steps = 5
  return c
