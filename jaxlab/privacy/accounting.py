"""The privacy budget of a DP-SGD run: (ε, δ) from Google's `dp_accounting`.

The accounted mechanism is the one `jaxlab.privacy.dp_sgd` runs: each step samples a
batch from the N training examples (Poisson at rate q = batch_size / N, or batch_size
of them uniformly without replacement), clips every example's gradient to
`l2_clip_norm` and adds Gaussian noise of std `noise_multiplier * l2_clip_norm` to the
sum. Poisson sampling is accounted under add/remove-one adjacency, fixed-size sampling
under replace-one (the relation dp_accounting supports for it; RDP only). Host-side,
and imported by evaluation too: nothing here knows about training.
"""

import functools

from jaxlab.errors import UserError


def _dp_accounting():
  try:
    import dp_accounting
    from dp_accounting import pld, rdp
  except ImportError:
    raise UserError('--config.privacy.enabled=True needs the dp-accounting package to compute '
                    'the privacy budget: pip install "jaxlab[privacy]" (or dp-accounting).'
                    ) from None
  return dp_accounting, pld, rdp


def _event(noise_multiplier, sampling, num_examples, batch_size, steps):
  dpa, _, _ = _dp_accounting()
  gaussian = dpa.GaussianDpEvent(noise_multiplier)
  if sampling == 'poisson':
    sampled = dpa.PoissonSampledDpEvent(batch_size / num_examples, gaussian)
  else:
    sampled = dpa.SampledWithoutReplacementDpEvent(num_examples, batch_size, gaussian)
  return dpa.SelfComposedDpEvent(sampled, steps)


def _accountant(name, sampling):
  dpa, pld, rdp = _dp_accounting()
  relation = (dpa.NeighboringRelation.ADD_OR_REMOVE_ONE if sampling == 'poisson'
              else dpa.NeighboringRelation.REPLACE_ONE)
  if name == 'pld':
    return pld.PLDAccountant(neighboring_relation=relation)
  return rdp.RdpAccountant(neighboring_relation=relation)


@functools.lru_cache(maxsize=256)
def _epsilon(noise_multiplier, sampling, accountant_name, delta, num_examples, batch_size, steps):
  if steps == 0:
    return 0.0
  accountant = _accountant(accountant_name, sampling)
  accountant.compose(_event(noise_multiplier, sampling, num_examples, batch_size, steps))
  return float(accountant.get_epsilon(delta))


def epsilon(privacy_config, num_examples, batch_size, steps):
  """ε at privacy_config.delta after `steps` DP-SGD steps (cached: logged often)."""
  c = privacy_config
  return _epsilon(float(c.noise_multiplier), c.sampling, c.accountant, float(c.delta),
                  int(num_examples), int(batch_size), int(steps))


def report(config, num_examples, steps):
  """What the run summary and eval JSON state about privacy (None when it is off)."""
  c = config.privacy
  if not c.enabled:
    return None
  batch_size = config.data.batch_size
  return dict(epsilon=epsilon(c, num_examples, batch_size, steps), delta=float(c.delta),
              accountant=c.accountant, sampling=c.sampling,
              sampling_rate=batch_size / num_examples, steps=int(steps),
              noise_multiplier=float(c.noise_multiplier), l2_clip_norm=float(c.l2_clip_norm),
              num_examples=int(num_examples))


def describe(report_):
  """'ε = 2.60 at δ = 1e-05 (rdp, poisson sampling, 14063 steps)'."""
  r = report_
  return (f'ε = {r["epsilon"]:.2f} at δ = {r["delta"]:.0e} ({r["accountant"]}, '
          f'{r["sampling"]} sampling, {r["steps"]} steps)')
