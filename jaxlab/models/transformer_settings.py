"""transformer_lm's settings: their defaults, the derived ones (`resolve`), the checks a
model is built only after (`check`), and the parameter count without building it.
jaxlab.models.transformer re-exports them; the model itself lives there."""

from jaxlab.models import layers

# None lets JAX choose (XLA today, on every backend); 'cudnn' asks for cuDNN flash
# attention on GPU, which needs bf16/fp16 activations.
ATTENTION_IMPLEMENTATIONS = (None, 'xla', 'cudnn')

DEFAULTS = dict(
    num_layers=2,  # Transformer blocks
    embed_dim=128,  # D, the residual stream's width
    num_heads=4,  # N query heads; each is H = D / N wide
    num_kv_heads=None,  # K key/value heads, dividing N (grouped-query attention); None: N
    mlp_dim=None,  # F, the SwiGLU hidden width; None: 4 D
    dropout_rate=0.0,  # on the embeddings and on each block's residual branches
    rope_base=10000.0,  # RoPE wavelengths run from 2 pi up to about 2 pi * rope_base
    tie_embeddings=False,  # logits from the embedding table instead of a separate head
    max_len=None,  # the longest sequence the model accepts; None: the data's seq_len
    kernel_init='lecun_normal',  # initialiser of the dense kernels (layers.INITIALIZERS)
    attention_implementation=None,  # jax.nn.dot_product_attention's: None, 'xla' or 'cudnn'
    scan_layers=True,  # blocks stacked and run by nnx.scan (False: a Python loop over a list)
    remat='none',  # per-block rematerialisation: 'none', 'full' or 'dots' (see the docstring)
    head_dim=None,  # H, each head's width; None: D / N (imported models may differ)
    norm_eps=1e-6,  # the RMSNorms' epsilon (Llama 2 checkpoints use 1e-5)
    qkv_bias=False,  # biases on the query, key and value projections (Qwen2's)
)


def resolve(input_shape, options):
  """DEFAULTS overridden by `options`, with the derived defaults (None) filled in."""
  settings = {**DEFAULTS, **options}
  derived = dict(num_kv_heads=settings['num_heads'], mlp_dim=4 * settings['embed_dim'],
                 max_len=input_shape[0] if input_shape else None,
                 head_dim=_default_head_dim(settings))
  for name, value in derived.items():
    if settings[name] is None:
      settings[name] = value
  return settings


def _default_head_dim(settings):
  embed_dim, num_heads = settings['embed_dim'], settings['num_heads']
  valid = all(isinstance(v, int) and v > 0 for v in (embed_dim, num_heads))
  return embed_dim // num_heads if valid and embed_dim % num_heads == 0 else None


def check(input_shape, num_classes, settings):
  """Raises UserError for settings the model cannot be built from."""
  layers.check_options(
      'transformer_lm', settings,
      counts=('num_layers', 'embed_dim', 'num_heads', 'num_kv_heads', 'mlp_dim', 'max_len')
      + (('head_dim',) if settings['head_dim'] is not None else ()),
      rates=('dropout_rate',),
      choices=dict(kernel_init=tuple(layers.INITIALIZERS),
                   attention_implementation=ATTENTION_IMPLEMENTATIONS,
                   remat=tuple(layers.REMAT_POLICIES)))
  problems = _shape_problems(input_shape, num_classes, settings)
  layers.reject('transformer_lm', problems)


def _shape_problems(input_shape, num_classes, s):
  problems = []
  if len(input_shape) != 1:
    problems.append(f'the input must be token sequences of shape (seq_len,), got {input_shape}')
  elif s['max_len'] < input_shape[0]:
    problems.append(f'max_len={s["max_len"]} is shorter than the sequences '
                    f'({input_shape[0]} tokens)')
  if num_classes < 2:
    problems.append(f'the vocabulary has {num_classes} tokens; it needs at least 2')
  derived = s['head_dim'] is None or s['head_dim'] * s['num_heads'] == s['embed_dim']
  if derived and (s['head_dim'] is None or s['head_dim'] % 2):
    problems.append(f'embed_dim={s["embed_dim"]} must be num_heads={s["num_heads"]} times an '
                    'even head width (RoPE rotates feature pairs), or set head_dim')
  elif s['head_dim'] % 2:
    problems.append(f'the head width {s["head_dim"]} must be even (RoPE rotates feature pairs)')
  if s['num_heads'] % s['num_kv_heads']:
    problems.append(f'num_heads={s["num_heads"]} must be a multiple of '
                    f'num_kv_heads={s["num_kv_heads"]}')
  rope_base = s['rope_base']
  if isinstance(rope_base, bool) or not isinstance(rope_base, (int, float)) or rope_base <= 1:
    problems.append(f'rope_base={rope_base!r} must be a number above 1')
  problems += [f'{name}={s[name]!r} must be True or False'
               for name in ('tie_embeddings', 'scan_layers', 'qkv_bias')
               if not isinstance(s[name], bool)]
  norm_eps = s['norm_eps']
  if isinstance(norm_eps, bool) or not isinstance(norm_eps, (int, float)) or norm_eps <= 0:
    problems.append(f'norm_eps={norm_eps!r} must be a positive number')
  return problems


def num_params(vocab_size, settings):
  """The parameter count from `resolve`d settings, without building the model."""
  d, head_dim = settings['embed_dim'], settings['head_dim']
  q_width = settings['num_heads'] * head_dim
  kv_width = settings['num_kv_heads'] * head_dim
  # Two norms, q and out (D x N H each), k and v (D x K H each), SwiGLU's three matrices.
  per_layer = 2 * d + 2 * d * q_width + 2 * d * kv_width + 3 * d * settings['mlp_dim']
  if settings['qkv_bias']:
    per_layer += q_width + 2 * kv_width
  embeddings = vocab_size * d * (1 if settings['tie_embeddings'] else 2)
  return settings['num_layers'] * per_layer + embeddings + d  # + the final norm
