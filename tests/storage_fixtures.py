"""Fixtures for tests that need a gs:// bucket (imported by tests/conftest.py)."""

import pytest

try:
  from tests import storage_emulators
except ImportError:  # tests/ is on sys.path itself (pytest's default rootdir handling)
  import storage_emulators


@pytest.fixture(scope='session')
def gcs_emulator():
  """A running GCS emulator with its bucket; the environment points every client at it."""
  try:
    with storage_emulators.gcs_emulator() as emulator:
      yield emulator
  except storage_emulators.EmulatorUnavailable as reason:
    pytest.skip(f'GCS emulator unavailable: {reason}')


@pytest.fixture
def gcs_workdir(gcs_emulator):  # pylint: disable=redefined-outer-name
  """A gs:// workdir in the emulator that no other test uses."""
  return gcs_emulator.fresh_url('workdir')
