"""The scanned Transformer LM sharded on 8 CPU devices: data x FSDP x tensor parallel
(2 x 2 x 2) trains as one device does, and the dry run shards the parameters as the
rules say (one subprocess for all)."""

import pytest

from tests.test_parallel import run_worker

pytestmark = pytest.mark.slow  # one JAX process on 8 devices: two short runs, one dry run


@pytest.fixture(scope='module')
def result(tmp_path_factory):
  return run_worker('language_model', workdir=str(tmp_path_factory.mktemp('lm')),
                    layouts=['single', 'dp_fsdp_tp'], table_layouts=['dp_fsdp_tp'])


def test_lm_sharded_over_data_fsdp_and_tensor_matches_one_device(result):
  single, sharded = result['losses']['single'], result['losses']['dp_fsdp_tp']
  assert len(single) == len(sharded) == 3
  assert single[-1] < single[0]
  for a, b in zip(single, sharded):
    assert b == pytest.approx(a, rel=1e-5)


def test_lm_dry_run_shards_heads_mlp_and_vocab_over_tensor_and_never_the_layers(result):
  specs = {path: spec for path, _, spec in result['tables']['dp_fsdp_tp']}
  assert specs['blocks/attention/query/kernel'] == "P(None, 'fsdp', 'tensor', None)"
  assert specs['blocks/attention/key/kernel'] == "P(None, 'fsdp', 'tensor', None)"
  assert specs['blocks/attention/out/kernel'] == "P(None, 'tensor', None, 'fsdp')"
  assert specs['blocks/mlp/gate/kernel'] == "P(None, 'fsdp', 'tensor')"
  assert specs['blocks/mlp/down/kernel'] == "P(None, 'tensor', 'fsdp')"
  assert specs['blocks/attention_norm/scale'] == "P(None, 'fsdp')"
  assert specs['embed/embedding'] == "P('tensor', 'fsdp')"
  # Every stacked parameter keeps its whole layer axis on each device.
  stacked = [spec for path, spec in specs.items() if path.startswith('blocks/')]
  assert len(stacked) == 9 and all(spec.startswith('P(None') for spec in stacked)
