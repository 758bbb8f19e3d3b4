"""Fine-tuning an imported Hugging Face checkpoint on your own files, in one command.

  jaxlab import --source=HF_VIT_DIR --workdir=VIT_DIR
  jaxlab train --config=experiments/finetune_pretrained.py:VIT_DIR --config.data.path=IMAGE_DIR --workdir=DIR
  jaxlab import --source=HF_LLAMA_DIR --workdir=LLAMA_DIR
  jaxlab train --config=experiments/finetune_pretrained.py:LLAMA_DIR --config.data.path=TEXT_DIR --workdir=DIR
  jaxlab sample --workdir=DIR --prompt=TEXT

The config argument is the workdir `jaxlab import` wrote (VIT_DIR, LLAMA_DIR above). Its
model (architecture, sizes, pixel statistics) is taken as is and its weights start the
run (init.from_workdir); what changes is the data:
- an image classifier (ViT, ResNet) trains on data.path as an image folder
  (DIR/<class>/*.jpg, or DIR/train/<class> and DIR/test/<class>), at the checkpoint's
  image size, with a fresh head for your classes (init.reset);
- a language model (Llama, Mistral, Qwen2) trains on data.path as text files (a folder
  or glob of .txt, or .jsonl with data.text_key), tokenized by the checkpoint's own
  tokenizer (data.tokenizer='pretrained'), which the new workdir keeps for `jaxlab sample`.
The optimizer is the import's (AdamW, warm-up and cosine, a small learning rate); every
field can be overridden as usual, e.g. --config.num_epochs=10 or --config.lora.rank=8.
"""

from jaxlab import config as config_lib
from jaxlab.errors import UserError


def get_config(arg=None):
  if not arg:
    raise UserError('experiments/finetune_pretrained.py needs the workdir of an imported '
                    'checkpoint as its argument: --config=experiments/finetune_pretrained.py:DIR '
                    '(DIR as given to `jaxlab import --workdir=DIR`).')
  source = arg
  c = config_lib.load_from_workdir(source)  # the imported model's resolved config
  c.init.from_workdir = source  # its step-0 checkpoint starts this run
  c.init.checkpoint = 'latest'

  if c.task.name == 'language_model':
    c.data.name = 'text_files'  # --config.data.path=DIR, a glob, or a .jsonl file
    c.data.tokenizer = 'pretrained'  # the checkpoint's tokenizer...
    c.data.tokenizer_from = source  # ...copied from the import into this workdir
    c.data.batch_size = 8  # sequences of data.seq_len tokens per step
  else:
    c.data.name = 'image_folder'  # --config.data.path=DIR with one folder per class
    c.data.placement = 'stream'  # decoded by Grain's workers as it trains
    c.data.resize_mode = 'stretch'  # to the checkpoint's data.image_size
    c.data.augment = ('flip',)
    c.data.batch_size = 32
    c.init.reset = ('head/.*',)  # a fresh classifier for your classes

  c.num_epochs = 3  # passes over your files
  c.steps_per_loop = 10  # steps per compiled call
  c.log_every_steps = 10
  c.eval_every_steps = 100
  c.checkpoint_every_steps = 100
  return c
