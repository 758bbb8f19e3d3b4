"""What a device-hour costs: a small table of on-demand cloud prices per device type,
and the cost of a run from its device-hours.

Prices are list prices in US dollars per device-hour, on demand (no commitment, no spot
discount), in the cheapest large US region, as recorded in 2025 from the pages named
beside each line. They change: check the page, or set `config.cost.price_per_device_hour`
(which always wins). Not re-checked from the machine that wrote this table (it had no
web access), so treat every figure as an estimate to within tens of percent.

A "device" is a JAX device: a chip for every accelerator here (TPU v4 and v5p expose a
chip's two TensorCores as one device), and on CPU a whole host (the devices a process
forces on its CPU share one machine), priced as a general-purpose 8-vCPU VM.
"""

import dataclasses
import re

# (name, device_kind pattern, $ per device-hour). More specific patterns come first;
# device kinds as jax reports them (see jaxlab.perf.device_peaks.KNOWN_PEAKS).
KNOWN_PRICES = (
    # cloud.google.com/tpu/pricing, us-central2, on demand: $3.22 per chip-hour.
    ('TPU v4', r'^TPU v4$', 3.22),
    # cloud.google.com/tpu/pricing, us-central1, on demand: $1.20 per chip-hour.
    ('TPU v5e', r'^TPU v5( lite|e)$', 1.20),
    # cloud.google.com/tpu/pricing, us-east5, on demand: $4.20 per chip-hour.
    ('TPU v5p', r'^TPU v5p?$', 4.20),
    # cloud.google.com/tpu/pricing, us-east1, on demand: $2.70 per chip-hour.
    ('TPU v6e', r'^TPU v6( lite|e)$', 2.70),
    # aws.amazon.com/ec2/pricing/on-demand, us-east-1, p4d.24xlarge (8 x A100 40GB) after
    # the June 2025 price cut: $21.96 per hour / 8 GPUs.
    ('NVIDIA A100', r'A100', 2.75),
    # aws.amazon.com/ec2/pricing/on-demand, us-east-1, p5.48xlarge (8 x H100 SXM) after
    # the June 2025 price cut: $55.04 per hour / 8 GPUs.
    ('NVIDIA H100', r'H100', 6.88),
    # aws.amazon.com/ec2/pricing/on-demand, us-east-1, p5en.48xlarge (8 x H200) after
    # the June 2025 price cut: $63.30 per hour / 8 GPUs.
    ('NVIDIA H200', r'H200', 7.91),
    # cloud.google.com/compute/vm-instance-pricing, us-central1, n2-standard-8
    # (8 vCPUs, 32 GB): $0.389 per hour.
    ('CPU host', r'^cpu$', 0.389),
)


@dataclasses.dataclass(frozen=True)
class Price:
  """Dollars per device-hour (None when unknown) and where the figure came from."""
  per_device_hour: float | None
  source: str

  def to_json(self):
    return dict(price_per_device_hour=self.per_device_hour, price_source=self.source)


def table_price(device_kind):
  """The table's price for a jax Device.device_kind ('cpu' for a CPU host)."""
  for name, pattern, dollars in KNOWN_PRICES:
    if re.search(pattern, device_kind.strip()):
      return Price(dollars, f'{name} on-demand list price (jaxlab.perf.device_prices, 2025)')
  return Price(None, f'no known price for device {device_kind!r}; set '
                     '--config.cost.price_per_device_hour')


def billed_devices(mesh):
  """(device kind, how many are billed) of a mesh: chips, or CPU hosts (processes)."""
  devices = list(mesh.devices.flat)
  if devices[0].platform == 'cpu':
    return 'cpu', len({d.process_index for d in devices})
  return devices[0].device_kind, len(devices)


def mesh_price(mesh, override=None):
  """(price per device-hour, devices billed): `override` (config.cost.
  price_per_device_hour) wins over the table."""
  kind, count = billed_devices(mesh)
  if override is not None:
    return Price(float(override), 'config.cost.price_per_device_hour'), count
  return table_price(kind), count


def cost(device_hours, price):
  """Dollars for `device_hours` at `price`, or None without a price."""
  if price.per_device_hour is None:
    return None
  return device_hours * price.per_device_hour
