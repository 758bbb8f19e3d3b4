"""The decoder-only Transformer LM: masking, RoPE, GQA, tied embeddings, axis names, learning."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import AbstractMesh, PartitionSpec as P

from jaxlab import config as config_lib
from jaxlab.errors import UserError
from jaxlab.models import transformer
from jaxlab.parallel import sharding

SEQ_LEN, VOCAB = 16, 61
TINY = dict(num_layers=2, embed_dim=32, num_heads=4)


def build(dtype=jnp.float32, seed=0, **options):
  with nnx.use_eager_sharding(False):  # as models.build: jaxlab places parameters itself
    return transformer.create((SEQ_LEN,), VOCAB, rngs=nnx.Rngs(seed), dtype=dtype,
                              **{**TINY, **options})


@functools.partial(jax.jit, static_argnums=0)
def _apply(graphdef, state, x_BxL, segment_ids, positions):
  return nnx.merge(graphdef, state)(x_BxL, segment_ids=segment_ids, positions=positions)


def apply(model, x_BxL, *, segment_ids=None, positions=None):
  return _apply(*nnx.split(model), x_BxL, segment_ids, positions)


def tokens(shape=(2, SEQ_LEN), seed=1):
  return jax.random.randint(jax.random.PRNGKey(seed), shape, 0, VOCAB)


def param_shapes(model):
  return jax.tree.map(jnp.shape, nnx.to_pure_dict(nnx.state(model, nnx.Param)))


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_logits_shape_and_dtype(dtype):
  logits_BxLxV = apply(build(dtype), tokens((3, SEQ_LEN)))
  assert logits_BxLxV.shape == (3, SEQ_LEN, VOCAB)
  assert logits_BxLxV.dtype == dtype
  assert bool(jnp.isfinite(logits_BxLxV).all())


def test_parameters_stay_float32_under_bfloat16_compute():
  state = nnx.state(build(jnp.bfloat16), nnx.Param)
  assert {leaf.dtype for leaf in jax.tree.leaves(state)} == {jnp.dtype(jnp.float32)}


def test_a_token_changes_no_earlier_logits():
  model, x_BxL, t = build(), tokens(), 7
  changed_BxL = x_BxL.at[:, t].set((x_BxL[:, t] + 1) % VOCAB)
  before, after = apply(model, x_BxL), apply(model, changed_BxL)
  np.testing.assert_array_equal(before[:, :t], after[:, :t])
  assert float(jnp.abs(before[:, t:] - after[:, t:]).min(axis=-1).max()) > 0


def test_packed_documents_do_not_see_each_other():
  model, x = build(), tokens((1, SEQ_LEN))
  split = 6  # doc A = tokens [0, 6), doc B = [6, 16)
  packed = apply(model, x, segment_ids=jnp.array([[1] * split + [2] * (SEQ_LEN - split)]),
                 positions=jnp.array([list(range(split)) + list(range(SEQ_LEN - split))]))
  # Each document alone at the start of a row, padding (segment 0) after it.
  for start, stop in [(0, split), (split, SEQ_LEN)]:
    length = stop - start
    alone = apply(model, jnp.roll(x, -start, axis=1),
                  segment_ids=jnp.array([[1] * length + [0] * (SEQ_LEN - length)]),
                  positions=jnp.arange(SEQ_LEN)[None])
    np.testing.assert_allclose(packed[:, start:stop], alone[:, :length], atol=1e-5)


def test_logits_depend_on_relative_positions_only():
  model, x_BxL = build(), tokens()
  shifted = jnp.broadcast_to(jnp.arange(SEQ_LEN) + 1000, x_BxL.shape)
  np.testing.assert_allclose(apply(model, x_BxL, positions=shifted), apply(model, x_BxL), atol=1e-4)


def test_positions_drive_rope():
  model, x_BxL = build(), tokens()
  reversed_positions = jnp.broadcast_to(jnp.arange(SEQ_LEN)[::-1], x_BxL.shape)
  reversed_logits = apply(model, x_BxL, positions=reversed_positions)
  assert not np.allclose(reversed_logits, apply(model, x_BxL), atol=1e-3)


def test_grouped_query_attention_shares_each_kv_head_with_consecutive_query_heads():
  gqa = build(num_kv_heads=2)
  attention = param_shapes(gqa)['blocks']['attention']  # stacked: a leading layer axis
  assert attention == {'query': {'kernel': (2, 32, 4, 8)}, 'key': {'kernel': (2, 32, 2, 8)},
                       'value': {'kernel': (2, 32, 2, 8)}, 'out': {'kernel': (2, 4, 8, 32)}}
  # Multi-head attention with each kv head repeated for its two query heads computes the same.
  mha = build()
  for name in ('key', 'value'):
    getattr(mha.blocks.attention, name).kernel[...] = jnp.repeat(
        getattr(gqa.blocks.attention, name).kernel[...], 2, axis=2)
  rest = nnx.Not(nnx.Any(nnx.PathContains('key'), nnx.PathContains('value')))
  nnx.update(mha, nnx.state(gqa, rest))
  np.testing.assert_allclose(apply(mha, tokens()), apply(gqa, tokens()), atol=1e-5)


def test_tied_embeddings_have_no_head_and_share_the_table():
  model = build(tie_embeddings=True)
  assert 'head' not in param_shapes(model)
  x_BxL = tokens()
  model.embed.embedding[...] = model.embed.embedding[...].at[5].set(0.0)
  assert float(jnp.abs(apply(model, x_BxL)[..., 5]).max()) == 0  # token 5's logit reads row 5


@pytest.mark.parametrize('options', [{}, dict(num_kv_heads=1, mlp_dim=48, tie_embeddings=True)])
def test_parameter_count_formula(options):
  model = build(**options)
  counted = sum(leaf.size for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)))
  assert counted == transformer.num_params(VOCAB, transformer.resolve((SEQ_LEN,),
                                                                      {**TINY, **options}))


def test_every_parameter_is_named_and_shards_as_megatron():
  specs = nnx.to_pure_dict(nnx.get_partition_spec(nnx.state(build(num_kv_heads=2), nnx.Param)))
  flat = {'/'.join(str(key.key) for key in path): spec for path, spec in
          jax.tree_util.tree_leaves_with_path(specs, is_leaf=lambda s: isinstance(s, P))}
  assert all(any(spec) for spec in flat.values()), flat
  names = {name for spec in flat.values() for name in spec}
  assert names == {'layers', 'vocab', 'embed', 'heads', 'kv_heads', 'head_dim', 'mlp'}
  # Every stacked parameter leads with the layer axis, and only those do.
  assert {path for path, spec in flat.items() if spec[0] == 'layers'} == {
      path for path in flat if path.startswith('blocks/')}
  mesh = AbstractMesh((2, 2), ('fsdp', 'tensor'))
  shapes = {'embed/embedding': (64, 32), 'blocks/attention/query/kernel': (2, 32, 4, 8),
            'blocks/attention/key/kernel': (2, 32, 2, 8),
            'blocks/attention/out/kernel': (2, 4, 8, 32),
            'blocks/mlp/gate/kernel': (2, 32, 128), 'blocks/mlp/down/kernel': (2, 128, 32),
            'blocks/mlp_norm/scale': (2, 32), 'head/kernel': (32, 64)}
  placed = {path: sharding.mesh_spec(flat[path], shape, mesh, config_lib.DEFAULT_SHARDING_RULES)
            for path, shape in shapes.items()}
  assert placed == {'embed/embedding': P('tensor', 'fsdp'),
                    'blocks/attention/query/kernel': P(None, 'fsdp', 'tensor', None),
                    'blocks/attention/key/kernel': P(None, 'fsdp', 'tensor', None),
                    'blocks/attention/out/kernel': P(None, 'tensor', None, 'fsdp'),
                    'blocks/mlp/gate/kernel': P(None, 'fsdp', 'tensor'),
                    'blocks/mlp/down/kernel': P(None, 'tensor', 'fsdp'),
                    'blocks/mlp_norm/scale': P(None, 'fsdp'),
                    'head/kernel': P('fsdp', 'tensor')}


def _unrolled_copy(scanned, **options):
  """An unrolled model holding the scanned model's weights, layer i from index i."""
  unrolled = build(scan_layers=False, **options)
  stacked = nnx.state(scanned.blocks)
  for layer, block in enumerate(unrolled.blocks):
    nnx.update(block, jax.tree.map(lambda a, layer=layer: a[layer], stacked))
  nnx.update(unrolled, nnx.state(scanned, nnx.Not(nnx.PathContains('blocks'))))
  return unrolled


def test_scanned_layers_compute_what_unrolled_layers_compute():
  scanned = build(num_layers=3, num_kv_heads=2)
  unrolled = _unrolled_copy(scanned, num_layers=3, num_kv_heads=2)
  # The same parameters: each unrolled block is one slice of the stack (so the count agrees).
  for block in unrolled.blocks:
    assert jax.tree.map(jnp.shape, nnx.state(block)) == \
        jax.tree.map(lambda a: a.shape[1:], nnx.state(scanned.blocks))
  x_BxL = tokens()
  np.testing.assert_allclose(apply(unrolled, x_BxL), apply(scanned, x_BxL), atol=2e-5)


def _grads(model, x_BxL):
  graphdef, params = nnx.split(model)

  @jax.jit
  def grads(params):
    def loss(params):
      logits_BxLxV = nnx.merge(graphdef, params)(x_BxL[:, :-1])
      return optax.softmax_cross_entropy_with_integer_labels(logits_BxLxV, x_BxL[:, 1:]).mean()
    return jax.grad(loss)(params)

  return jax.tree.leaves(grads(params))


@pytest.mark.parametrize('remat,scan_layers', [('full', True), ('dots', False)])
def test_per_layer_remat_leaves_the_gradients_unchanged(remat, scan_layers):
  x_BxL = tokens()
  plain = _grads(build(scan_layers=scan_layers), x_BxL)
  rematted = _grads(build(scan_layers=scan_layers, remat=remat), x_BxL)
  assert len(plain) == len(rematted)
  for a, b in zip(plain, rematted):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_each_scanned_layer_draws_its_own_dropout_masks(monkeypatch):
  kept = []
  dropout = nnx.Dropout.__call__

  def recording(self, inputs, *args, **kwargs):
    outputs = dropout(self, inputs, *args, **kwargs)
    jax.debug.callback(lambda mask: kept.append(np.asarray(mask).tobytes()), outputs != 0)
    return outputs

  monkeypatch.setattr(nnx.Dropout, '__call__', recording)
  nnx.jit(lambda model, rngs: model(tokens(), rngs=rngs))(build(dropout_rate=0.5),
                                                          nnx.Rngs(dropout=0))
  jax.effects_barrier()
  # The embeddings' mask, then two per layer (attention and MLP branches): layers sharing
  # their keys would repeat theirs.
  assert len(kept) == 1 + 2 * TINY['num_layers'] and len(set(kept)) == len(kept)


def test_remat_of_the_loss_and_of_each_layer_together_is_a_user_error():
  config = config_lib.defaults()
  config.model.name = 'transformer_lm'
  config.model.remat = 'full'
  config.remat = 'dots'
  with pytest.raises(UserError, match='would recompute twice'):
    config_lib.validate(config)


def test_query_kernel_is_scaled_by_its_true_fan_in():
  kernel_DxNxH = build().blocks.attention.query.kernel[...][0]
  # lecun_normal: std 1 / sqrt(D); fan-in read from axis -2 alone would give 1 / sqrt(D N).
  assert abs(float(kernel_DxNxH.std()) * TINY['embed_dim'] ** 0.5 - 1) < 0.1


def test_a_few_adam_steps_memorise_a_sequence():
  graphdef, params = nnx.split(build())
  x_BxL = jnp.tile(tokens((1, SEQ_LEN // 2)), (4, 2))  # a random half-row, said twice
  optimizer = optax.adam(1e-2)

  def loss_fn(params):
    logits_BxLxV = nnx.merge(graphdef, params)(x_BxL[:, :-1]).astype(jnp.float32)
    return optax.softmax_cross_entropy_with_integer_labels(logits_BxLxV, x_BxL[:, 1:]).mean()

  @jax.jit
  def train(params):
    def step(carry, _):
      params, opt_state = carry
      loss, grads = jax.value_and_grad(loss_fn)(params)
      updates, opt_state = optimizer.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), loss
    _, losses = jax.lax.scan(step, (params, optimizer.init(params)), length=40)
    return losses

  losses = train(params)
  assert float(losses[0]) > np.log(VOCAB) - 1
  assert float(losses[-1]) < 0.25 * float(losses[0]), losses


def test_dropout_draws_from_the_rngs_it_is_given():
  model, x_BxL = build(dropout_rate=0.5), tokens()
  rngs = nnx.Rngs(dropout=0)
  forward = nnx.jit(lambda model, rngs: model(x_BxL, rngs=rngs))
  assert not np.allclose(forward(model, rngs), forward(model, rngs))


def test_sequences_longer_than_max_len_are_refused():
  with pytest.raises(ValueError, match='max_len'):
    apply(build(), tokens((1, SEQ_LEN + 1)))


@pytest.mark.parametrize('options,message', [
    (dict(num_layers=0), 'num_layers=0 must be a positive integer'),
    (dict(dropout_rate=1.0), 'dropout_rate=1.0 must be a number in'),
    (dict(kernel_init='zeros'), 'kernel_init'),
    (dict(attention_implementation='flash'), 'attention_implementation'),
    (dict(embed_dim=30), 'embed_dim=30 must be num_heads=4 times an even head width'),
    (dict(embed_dim=12), 'even head width'),
    (dict(num_kv_heads=3), 'multiple of num_kv_heads=3'),
    (dict(max_len=8), 'max_len=8 is shorter'),
    (dict(rope_base=0.5), 'rope_base=0.5'),
    (dict(tie_embeddings='yes'), 'tie_embeddings'),
    (dict(scan_layers=1), 'scan_layers=1 must be True or False'),
    (dict(remat='dots_no_batch'), "remat='dots_no_batch' must be one of"),
])
def test_bad_options_are_user_errors(options, message):
  with pytest.raises(UserError, match=message):
    build(**options)


def test_unknown_option_is_a_type_error_for_models_build_to_report():
  with pytest.raises(TypeError, match='hidden'):
    build(hidden=(128,))


def test_non_sequence_input_is_a_user_error():
  with pytest.raises(UserError, match=r'shape \(seq_len,\)'):
    transformer.create((8, 8, 1), VOCAB, rngs=nnx.Rngs(0))
