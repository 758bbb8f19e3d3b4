"""The fields every experiment shares: names, defaults, allowed values, one comment each.

`defaults()` builds the ConfigDict an experiment starts from; `rules()` gives the check
of every field (used by jaxlab.config.validation); `variant()` reads an experiment's
config argument ('smoke', 'gru,smoke'); `fields()` lists every field as declared (the
docs' config reference).
"""

import typing

import ml_collections

from jaxlab.config import checks
from jaxlab.finetune import patterns

# Names the checks accept, listed here so that loading a config stays light.
DATA_NAMES = ('digits', 'mnist', 'fashion_mnist', 'cifar10', 'synthetic', 'npz', 'python_docs',
              'lm1b', 'imdb_reviews', 'python_snippets', 'synthetic_speech', 'spoken_digits',
              'speech_commands', 'imagenet2012', 'image_folder', 'table', 'text_files', 'hf_disk',
              'coco_json', 'shapes_detection', 'coco', 'voc',
              'spoken_sentences', 'speech_manifest', 'librispeech',
              'text_pairs', 'freedict_de_en', 'stdlib_summaries', 'wmt14_translate', 'cnn_dailymail')
# Data sets read from your own files at data.path.
PATH_DATA_NAMES = ('npz', 'image_folder', 'table', 'text_files', 'hf_disk', 'coco_json',
                   'speech_manifest', 'text_pairs')
SYNTHETIC_SHAPES = ('digits', 'mnist', 'fashion_mnist', 'cifar10', 'imagenet2012')
MESH_AXES = ('data', 'fsdp', 'tensor')


def defaults():
  """The fields every experiment shares, with the same names everywhere, so that one
  override (--config.data.batch_size=64) works on any experiment."""
  config = ml_collections.ConfigDict()

  def field(key, default, allowed):
    del allowed  # see rules()
    *sections, leaf = key.split('.')
    node = config
    for section in sections:
      if section not in node:
        node[section] = ml_collections.ConfigDict()
      node = node[section]
    node[leaf] = default

  _declare(field)
  return config


def variant(arg, choices=(), default=None):
  """An experiment's config argument -> (choice, smoke): 'CHOICE', 'smoke' or
  'CHOICE,smoke' where the experiment has `choices` (e.g. models), else only 'smoke' or
  nothing. Anything else is a ValueError naming what is accepted."""
  words = [w for w in (arg or '').split(',') if w]
  chosen = [w for w in words if w in choices]
  if len(chosen) > 1 or any(w not in choices and w != 'smoke' for w in words):
    if not choices:
      raise ValueError(f'Unknown config argument {arg!r}; use "smoke" or nothing.')
    raise ValueError(f'Unknown config argument {arg!r}; use one of {", ".join(choices)} and/or '
                     f'"smoke", separated by a comma (e.g. "{choices[-1]},smoke").')
  return (chosen or [default])[0], 'smoke' in words


def rules():
  """{dotted key: check} for every shared field; a check returns what is wrong, or None."""
  found = {}
  _declare(lambda key, default, allowed: found.__setitem__(key, allowed))
  return found


def fields():
  """Every shared field as declared: (key, default, allowed, doc), in declaration order.

  `default` is None for a placeholder (unset unless given); `allowed` describes the check;
  `doc` is the comment on the field's line. The docs' config reference is built from this.
  """
  comments = _declaration_comments()
  found = []

  def field(key, default, allowed):
    if isinstance(default, ml_collections.FieldReference):
      default = default.get()
    found.append(Field(key, default, allowed.allowed, comments.get(key, '')))

  _declare(field)
  return found


class Field(typing.NamedTuple):
  key: str  # dotted, e.g. 'optimizer.learning_rate'
  default: typing.Any
  allowed: str  # what the check accepts, in words
  doc: str  # the declaration's comment


def _declaration_comments():
  """{key: the comment after its field(...) call} in _declare's source."""
  import ast, inspect, io, tokenize  # pylint: disable=g-import-not-at-top,multiple-imports
  source = inspect.getsource(_declare)
  keys_by_last_line = {
      node.end_lineno: node.args[0].value for node in ast.walk(ast.parse(source))
      if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'field'
      and node.args and isinstance(node.args[0], ast.Constant)}
  return {keys_by_last_line[token.start[0]]: token.string.lstrip('#').strip()
          for token in tokenize.generate_tokens(io.StringIO(source).readline)
          if token.type == tokenize.COMMENT and token.start[0] in keys_by_last_line}


def _declare(field):
  """Every shared field: field(key, default, allowed values)  # what it does.

  Sections in order: data, model, optimizer, training loop, evaluation, checkpoints,
  parallelism, cost. `placeholder(T)` is a field that is unset (None) unless given.
  """
  placeholder = ml_collections.config_dict.placeholder
  field('seed', 0, checks.integer())  # seeds parameters, data order and dropout

  field('task.name', 'classification', checks.import_name('task', '"classification", "language_model", "regression", "detection", "speech_recognition", "seq2seq"'))  # what is learned: batch, loss, metrics (docs: Tasks and data)
  field('task.label_smoothing', 0.0, checks.number(minimum=0, below=1))  # classification, seq2seq: share of the target spread evenly over the classes (0: off)
  field('task.score_threshold', 0.05, checks.number(minimum=0, below=1))  # detection: boxes scoring below this are not kept
  field('task.pre_nms_top_k', 300, checks.integer(minimum=1))  # detection: highest-scoring (location, class) pairs that enter non-maximum suppression
  field('task.nms_iou', 0.6, checks.number(above=0, maximum=1))  # detection: a box overlapping a higher-scoring box of its class by more IoU is suppressed
  field('task.max_detections', 100, checks.integer(minimum=1))  # detection: boxes kept per image after suppression (COCO's evaluator reads 100)
  field('task.focal_alpha', 0.25, checks.number(minimum=0, maximum=1))  # detection: the focal loss's weight of positives (Lin et al. 2017)
  field('task.focal_gamma', 2.0, checks.number(minimum=0))  # detection: the focal loss's down-weighting of easy examples
  field('task.box_l1_weight', 0.0, checks.number(minimum=0))  # detection: weight of an L1 loss on the box distances beside GIoU (0: GIoU alone)
  field('task.center_radius', 1.5, checks.number(above=0))  # detection: locations within this many strides of a box's centre learn it (FCOS's centre sampling)
  field('decode.beam_size', 1, checks.integer(minimum=1))  # seq2seq and speech recognition, at eval and predict: beams of the beam search (1: greedy; the experiments use 4)
  field('decode.length_penalty', 0.6, checks.number(minimum=0))  # seq2seq beam search: GNMT's alpha, hypotheses ranked by log-probability / ((5 + length) / 6) ** alpha (0: off)
  field('decode.max_len', 0, checks.integer(minimum=0))  # seq2seq: most tokens decoded per output, end included (0: data.target_len)
  field('decode.use_cache', True, checks.boolean())  # seq2seq: decode on the decoder's key/value cache (False: recompute the prefix each step)

  field('data.name', 'digits', checks.one_of(*DATA_NAMES))  # the data set (docs: Tasks and data)
  field('data.placement', 'auto', checks.one_of('auto', 'device', 'stream'))  # device: whole set on the devices; stream: read by Grain as it trains
  field('data.device_memory_share', 0.25, checks.number(above=0, maximum=1))  # auto places on the devices up to this share of their memory
  field('data.num_workers', -1, checks.integer(minimum=-1))  # streaming: Grain worker processes (-1: one per core for decoded sources, 0 for arrays)
  field('data.prefetch_blocks', 2, checks.integer(minimum=1))  # streaming: blocks read ahead onto the devices
  field('data.skip_bad_records', True, checks.boolean())  # streaming: skip and count undecodable records (False: stop)
  field('data.max_bad_records_fraction', 0.01, checks.number(minimum=0, maximum=1))  # streaming: past this share of the records read being bad, checkpoint and stop (exit 2); 1: never
  field('data.min_records_for_bad_fraction', 1000, checks.integer(minimum=1))  # streaming: ...judged at each block once this many were read since the run (re)started
  field('data.cache_dir', '~/.cache/jaxlab/datasets', checks.optional_text())  # decoded TFDS arrays and tokenized text ('': no decoded-image cache)
  field('data.path', placeholder(str), checks.optional(checks.text()))  # your files: the .npz of npz, the folder of image_folder, the .csv/.parquet of table, ... (docs: Your files)
  field('data.validation_split', placeholder(float), checks.optional(checks.number(above=0, below=1)))  # your files without a test split: the share held out for eval (default 0.2)
  field('data.split_seed', 0, checks.integer())  # ...which examples are held out (apart from `seed`, so the test set stays put)
  field('data.resize_mode', 'stretch', checks.one_of('stretch', 'center_crop', 'random_crop'))  # image_folder/hf_disk to image_size: stretch (Keras's default), center_crop (largest centred square), random_crop (train: random crop + flip, streamed)
  field('data.color_mode', 'rgb', checks.one_of('rgb', 'grayscale'))  # image_folder/hf_disk: decode to 3 channels or 1
  field('data.label_column', placeholder(str), checks.optional(checks.text()))  # table: the column to predict (strings, ints, bools: classes; floats: regression)
  field('data.feature_columns', (), checks.names())  # table: the input columns (empty: every column but the label)
  field('data.text_key', 'text', checks.text())  # text_files .jsonl / hf_disk: the field holding the text
  field('data.label_key', 'label', checks.optional_text())  # text_files .jsonl / hf_disk: the field holding the class ('' or absent: language-model text)
  field('data.image_key', 'image', checks.text())  # hf_disk: the column holding the images
  field('data.data_dir', placeholder(str), checks.optional(checks.text()))  # TFDS data_dir (default ~/tensorflow_datasets)
  field('data.batch_size', 32, checks.integer(minimum=1))  # global batch, split over the data-parallel devices
  field('data.eval_batch_size', placeholder(int), checks.optional(checks.integer(minimum=1)))  # default: batch_size
  field('data.num_train', placeholder(int), checks.optional(checks.integer(minimum=1)))  # use only the first N training examples
  field('data.num_test', placeholder(int), checks.optional(checks.integer(minimum=1)))  # use only the first N test examples
  field('data.augment', (), checks.subset_of('crop', 'flip', 'scale_jitter'))  # on-device augmentations: 'crop', 'flip' (detection: random resized crop, flip, 'scale_jitter'; boxes move with the pixels)
  field('data.max_audio_seconds', placeholder(float), checks.optional(checks.number(above=0)))  # speech recognition: utterances are padded to this length and longer ones skipped (default: the set's longest; librispeech 17); with buckets, the longest bucket's bound
  field('data.num_buckets', 0, checks.integer(minimum=0))  # speech recognition: length buckets of the training batches, bounded at the training durations' quantiles; each batch and each steps_per_loop block is drawn from one bucket and padded only to its bound, and the train step compiles once per bucket (0 or 1: every batch padded to max_audio_seconds; in-memory sets, not librispeech)
  field('data.bucket_boundaries', (), checks.increasing_numbers(above=0))  # speech recognition: the buckets' bounds in seconds instead of num_buckets' quantiles, e.g. (2.0, 3.0) (a last bucket ends at the longest training utterance)
  field('data.max_boxes', 32, checks.integer(minimum=1))  # detection: boxes kept per image (the batch pads to this many)
  field('data.mixup_alpha', 0.0, checks.number(minimum=0))  # training: mixup of image pairs, weight ~ Beta(alpha, alpha) (0: off)
  field('data.image_size', 224, checks.integer(minimum=8))  # encoded images (imagenet2012, image_folder, hf_disk): side of the square they are resized or cropped to
  field('data.synthetic_like', 'digits', checks.one_of(*SYNTHETIC_SHAPES))  # shapes and sizes of data.name='synthetic'
  field('data.synthetic_seed', 0, checks.integer())  # seed of the synthetic images and their teacher (and of synthetic_speech)
  field('data.seq_len', 128, checks.integer(minimum=2))  # text: tokens per packed sequence
  field('data.tokenizer', 'byte', checks.one_of('byte', 'sentencepiece', 'pretrained'))  # text: bytes, SentencePiece trained on the training text, or an imported checkpoint's (data.tokenizer_from)
  field('data.tokenizer_from', '', checks.optional_text())  # tokenizer=pretrained: the workdir `jaxlab import` wrote, whose tokenizer this run uses
  field('data.vocab_size', 512, checks.integer(minimum=16))  # text: SentencePiece vocabulary size
  field('data.target_len', 0, checks.integer(minimum=0))  # text pairs: target tokens per example, end included (0: data.seq_len, the source's)
  field('data.shared_vocab', True, checks.boolean())  # text pairs with sentencepiece: one vocabulary for source and target (False: the target trains its own)

  field('model.name', 'cnn', checks.model_name())  # registered name, or 'package.module:Class'
  field('compute_dtype', 'auto', checks.one_of('auto', 'float32', 'bfloat16'))  # auto: bfloat16 on GPU/TPU, float32 on CPU
  field('remat', 'none', checks.one_of('none', 'full', 'dots'))  # rematerialisation over the whole loss (per layer instead: transformer_lm's model.remat)

  field('init.from_workdir', '', checks.optional_text())  # fine-tuning: a jaxlab workdir whose parameters and model state start this run (step 0, fresh optimizer; '': random init)
  field('init.checkpoint', 'best', checks.text())  # ...which of its checkpoints: best, latest or a step
  field('init.reset', (), patterns.check_patterns())  # ...parameters (regexes over '/'-joined paths, e.g. 'head/.*') that start from this model's init instead
  field('lora.rank', 0, checks.integer(minimum=0))  # LoRA adapters of this rank on lora.modules, base weights frozen (0: off; needs qwix)
  field('lora.alpha', 16.0, checks.number(above=0))  # LoRA's update is scaled by alpha / rank
  field('lora.modules', '.*', checks.text())  # regex over '/'-joined layer paths (Linear, Einsum, Conv) that get adapters

  field('optimizer.name', 'adam', checks.one_of('adam', 'adamw', 'sgd'))  # the update rule
  field('optimizer.learning_rate', 1e-3, checks.number(above=0))  # peak learning rate
  field('optimizer.schedule', 'constant', checks.one_of('constant', 'warmup_cosine'))  # learning rate: constant, or linear warmup then cosine decay
  field('optimizer.warmup_steps', placeholder(int), checks.optional(checks.integer(minimum=0)))  # warmup length in steps...
  field('optimizer.warmup_percent', 0.0, checks.number(minimum=0, maximum=100))  # ...or in percent of training
  field('optimizer.end_factor', 0.0, checks.number(minimum=0, maximum=1))  # final lr of warmup_cosine, as a fraction of the peak
  field('optimizer.b1', 0.9, checks.number(minimum=0, below=1))  # Adam's first-moment decay
  field('optimizer.b2', 0.999, checks.number(minimum=0, below=1))  # Adam's second-moment decay
  field('optimizer.eps', 1e-8, checks.number(above=0))  # Adam's epsilon (Keras uses 1e-7)
  field('optimizer.momentum', 0.9, checks.number(minimum=0, below=1))  # SGD momentum (0 for plain SGD)
  field('optimizer.nesterov', False, checks.boolean())  # SGD with Nesterov momentum
  field('optimizer.weight_decay', 0.0, checks.number(minimum=0))  # on kernels only; decoupled for adamw
  field('optimizer.grad_clip_norm', 0.0, checks.number(minimum=0))  # clip gradients to this global norm (0: off)
  field('optimizer.frozen', (), patterns.check_patterns())  # parameters (regexes over '/'-joined paths) that never change and get no optimizer state
  field('optimizer.lr_multipliers', (), patterns.check_multipliers())  # 'PATTERN=FACTOR' strings: the learning rate of matching parameters times FACTOR (0 freezes)

  field('num_epochs', 5, checks.number(above=0))  # training length in epochs...
  field('num_steps', placeholder(int), checks.optional(checks.integer(minimum=1)))  # ...or in steps (wins when set)
  field('steps_per_loop', 100, checks.integer(minimum=1))  # train steps per compiled call (lax.scan)
  field('grad_accum_steps', 1, checks.integer(minimum=1))  # split each batch into this many sequential micro-batches
  field('log_every_steps', 100, checks.integer(minimum=0))  # train metrics record interval (0: only at the end)
  field('progress', True, checks.boolean())  # progress bar on terminals
  field('allow_oversubscribe', False, checks.boolean())  # train even if the compiled step needs over 1.25x the devices' memory (else: refuse before step 1)

  field('eval_every_steps', 500, checks.integer(minimum=0))  # evaluation interval (0: only at the end)
  field('plots', True, checks.boolean())  # PNG training curves and confusion matrix at the end

  field('checkpoint_every_steps', 500, checks.integer(minimum=0))  # checkpoint interval (0: only at the end)
  field('checkpoint.keep', 2, checks.integer(minimum=1))  # how many of the latest checkpoints to keep
  field('checkpoint.best_metric', 'eval/accuracy', checks.metric_name('eval/'))  # also keep the best by this ('': off)
  field('checkpoint.best_mode', 'max', checks.one_of('max', 'min'))  # whether the best checkpoint has the largest or the smallest best_metric
  field('checkpoint.async_save', True, checks.boolean())  # write checkpoints in the background

  field('tracking.backend', '', checks.one_of('', 'mlflow'))  # also log params, metrics, config and final eval to MLflow ($MLFLOW_TRACKING_URI) ('': off; docs: Tracking)
  field('tracking.experiment', '', checks.optional_text())  # MLflow experiment ('': $MLFLOW_EXPERIMENT_NAME, else MLflow's Default)
  field('tracking.run_name', '', checks.optional_text())  # the run's name there ('': the workdir's folder name)
  field('tracking.max_pending', 1000, checks.integer(minimum=1))  # records queued for the tracking thread; beyond, new ones are dropped (metrics.jsonl keeps all)
  field('tracking.close_timeout_s', 30.0, checks.number(minimum=0))  # at the end, wait at most this long for queued records to be sent

  field('privacy.enabled', False, checks.boolean())  # DP-SGD: per-example clipping, Gaussian noise, sampling, ε accounting (docs: Differential privacy)
  field('privacy.l2_clip_norm', 1.0, checks.number(above=0))  # each example's gradient is clipped to this L2 norm
  field('privacy.noise_multiplier', 1.1, checks.number(above=0))  # noise std / l2_clip_norm, added to the summed clipped gradients
  field('privacy.sampling', 'poisson', checks.one_of('poisson', 'fixed'))  # poisson: each example joins a step with rate batch/N; fixed: batch_size drawn uniformly without replacement
  field('privacy.delta', 1e-5, checks.number(above=0, below=1))  # the δ of the reported (ε, δ); keep it below 1/N
  field('privacy.accountant', 'rdp', checks.one_of('rdp', 'pld'))  # dp_accounting's Rényi DP or privacy-loss-distribution accountant

  field('distill.teacher_workdir', '', checks.optional_text())  # a trained run whose softened outputs the model learns from ('': off)
  field('distill.checkpoint', 'best', checks.text())  # the teacher's checkpoint: best, latest or a step
  field('distill.temperature', 4.0, checks.number(above=0))  # softmax temperature of teacher and student in the distillation term
  field('distill.alpha', 0.5, checks.number(minimum=0, maximum=1))  # loss = alpha * T² KL(teacher_T || student_T) + (1 - alpha) * label loss

  field('mesh.data', -1, checks.mesh_axis())  # data-parallel axis size (-1: all remaining devices)
  field('mesh.fsdp', 1, checks.mesh_axis())  # fully sharded data-parallel axis size
  field('mesh.tensor', 1, checks.mesh_axis())  # tensor-parallel axis size
  field('sharding_rules', DEFAULT_SHARDING_RULES, checks.sharding_rules(MESH_AXES))  # logical parameter axis -> mesh axis

  field('cost.price_per_device_hour', placeholder(float), checks.optional(checks.number(minimum=0)))  # $ per device-hour for the cost estimate (default: jaxlab.perf.device_prices' table)
  field('cost.assumed_mfu', 0.35, checks.number(above=0, maximum=1))  # --dry_run: the MFU its time and cost estimate assumes


DEFAULT_SHARDING_RULES = (
    ('embed', 'fsdp'),
    ('conv_in', 'fsdp'),
    ('mlp', 'tensor'),
    ('conv_out', 'tensor'),
    ('heads', 'tensor'),
    ('kv_heads', 'tensor'),
    ('head_dim', ''),
    ('vocab', 'tensor'),
    ('classes', ''),
    ('layers', ''),  # the stacked layers of a scanned model: every device holds every layer
)
