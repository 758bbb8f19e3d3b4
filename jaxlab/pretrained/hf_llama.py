"""Llama-family decoders (Llama, Mistral, Qwen2) -> jaxlab's `transformer_lm`.

Both use RoPE on feature pairs (i, i + H/2) (Hugging Face's rotate_half, jaxlab's
GPT-NeoX layout) with the same frequencies, so q/k weights need no permutation; GQA,
tied or untied embeddings, the RMSNorm epsilon and Qwen2's q/k/v biases map onto
transformer_lm options.
"""

from jaxlab import data as data_lib
from jaxlab.pretrained import errors, families, tensors

ARCHITECTURES = ('LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM')
# The longest context an imported model gets by default: the sampler's key/value cache
# is [layers, max_len, kv_heads, head_dim], and 128k positions would not fit a host.
MAX_LEN = 4096
SEQ_LEN = 1024  # data.seq_len for fine-tuning (at most max_len)


def settings(config):
  """The checkpoint's sizes, with Hugging Face's defaults filled in."""
  hidden, heads = config['hidden_size'], config['num_attention_heads']
  rope = config.get('rope_parameters') or {}
  scaling = config.get('rope_scaling') or {}
  return dict(
      vocab_size=config['vocab_size'], hidden=hidden, heads=heads,
      kv_heads=config.get('num_key_value_heads') or heads,
      head_dim=config.get('head_dim') or hidden // heads,
      layers=config['num_hidden_layers'], mlp=config['intermediate_size'],
      eps=config.get('rms_norm_eps', 1e-6),
      rope_theta=rope.get('rope_theta', config.get('rope_theta', 10000.0)),
      rope_type=rope.get('rope_type') or scaling.get('rope_type') or scaling.get('type')
      or 'default',
      tied=bool(config.get('tie_word_embeddings', False)),
      qkv_bias=config.get('model_type') == 'qwen2' or bool(config.get('attention_bias')),
      max_positions=config.get('max_position_embeddings', MAX_LEN),
      window=_sliding_window(config))


def _sliding_window(config):
  if config.get('model_type') == 'qwen2' and not config.get('use_sliding_window'):
    return None
  return config.get('sliding_window')


def describe(checkpoint):
  config, s = checkpoint.config, settings(checkpoint.config)
  problems = []
  if s['rope_type'] != 'default':
    problems.append(f'RoPE scaling {s["rope_type"]!r} (jaxlab\'s transformer_lm has plain RoPE)')
  if config.get('hidden_act', 'silu') != 'silu':
    problems.append(f'hidden_act {config["hidden_act"]!r} (transformer_lm\'s MLP is SwiGLU)')
  if config.get('mlp_bias'):
    problems.append('MLP biases (mlp_bias=true)')
  if problems:
    raise errors.refuse(checkpoint.directory, checkpoint.architecture,
                        {'settings transformer_lm lacks': problems},
                        'jaxlab cannot reproduce this model exactly, so it does not import it.')
  # Attention beyond a sliding window would differ from Mistral's: stay inside it.
  max_len = min(s['max_positions'], s['window'] or MAX_LEN, MAX_LEN)
  seq_len = min(SEQ_LEN, max_len)
  model = dict(name='transformer_lm', num_layers=s['layers'], embed_dim=s['hidden'],
               num_heads=s['heads'], num_kv_heads=s['kv_heads'], head_dim=s['head_dim'],
               mlp_dim=s['mlp'], rope_base=float(s['rope_theta']),
               tie_embeddings=s['tied'], norm_eps=float(s['eps']), qkv_bias=s['qkv_bias'],
               max_len=max_len)
  features = {name: ((seq_len,), 'int32') for name in ('tokens', 'segment_ids', 'positions')}
  info = data_lib.DatasetInfo('pretrained_text', features, vocab_size=s['vocab_size'])
  notes = (f'context limited to {max_len} tokens (the checkpoint allows '
           f'{s["max_positions"]}; raise --config.model.max_len)',) \
      if max_len < s['max_positions'] else ()
  return families.Model(model, 'language_model', info, dict(seq_len=seq_len), 'eval/loss',
                        'min', notes)


def leaves(checkpoint, model, paths):
  s = settings(checkpoint.config)
  d, heads, kv, h, f = s['hidden'], s['heads'], s['kv_heads'], s['head_dim'], s['mlp']

  def layer(i):
    p = f'model.layers.{i}.'
    attn = p + 'self_attn.'
    found = dict(
        {'attention_norm/scale': tensors.vector(p + 'input_layernorm.weight', d),
         'mlp_norm/scale': tensors.vector(p + 'post_attention_layernorm.weight', d),
         'attention/query/kernel': tensors.linear(attn + 'q_proj.weight', heads * h, d,
                                                  out_split=(heads, h)),
         'attention/key/kernel': tensors.linear(attn + 'k_proj.weight', kv * h, d,
                                                out_split=(kv, h)),
         'attention/value/kernel': tensors.linear(attn + 'v_proj.weight', kv * h, d,
                                                  out_split=(kv, h)),
         'attention/out/kernel': tensors.linear(attn + 'o_proj.weight', d, heads * h,
                                                in_split=(heads, h)),
         'mlp/gate/kernel': tensors.linear(p + 'mlp.gate_proj.weight', f, d),
         'mlp/up/kernel': tensors.linear(p + 'mlp.up_proj.weight', f, d),
         'mlp/down/kernel': tensors.linear(p + 'mlp.down_proj.weight', d, f)})
    if s['qkv_bias']:
      found['attention/query/bias'] = tensors.vector(attn + 'q_proj.bias', heads * h, (heads, h))
      found['attention/key/bias'] = tensors.vector(attn + 'k_proj.bias', kv * h, (kv, h))
      found['attention/value/bias'] = tensors.vector(attn + 'v_proj.bias', kv * h, (kv, h))
    return found

  result = {'params/embed/embedding': tensors.same('model.embed_tokens.weight',
                                                   (s['vocab_size'], d)),
            'params/final_norm/scale': tensors.vector('model.norm.weight', d)}
  if not s['tied']:
    result['params/head/kernel'] = tensors.linear('lm_head.weight', s['vocab_size'], d)
  result.update(families.layer_leaves(layer, paths, 'params/blocks', s['layers']))
  return result


def ignored(checkpoint, name):
  """RoPE's precomputed frequencies (old checkpoints); a tied head's stored copy."""
  tied = settings(checkpoint.config)['tied']
  return name.endswith('rotary_emb.inv_freq') or (tied and name == 'lm_head.weight')
