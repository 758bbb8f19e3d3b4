"""Training with --workdir=gs://... against a local GCS emulator on 127.0.0.1."""

import json
import posixpath

import pytest
from etils import epath

from jaxlab import storage
from tests.conftest import run_cli


@pytest.mark.slow  # three CLI runs against the emulator (about 20 s)
def test_train_resume_eval_in_a_bucket(gcs_workdir):
  args = ['--config=experiments/digits_cnn.py:smoke', f'--workdir={gcs_workdir}',
          '--config.num_steps=22', '--config.checkpoint_every_steps=11']
  first = run_cli('train', *args, check=True)
  assert 'Done: step 22' in first.stdout
  root = epath.Path(gcs_workdir)
  steps = sorted(int(p.name) for p in (root / 'checkpoints').iterdir() if p.name.isdigit())
  assert steps == [11, 22]
  records = [json.loads(line) for line in storage.read_lines(posixpath.join(gcs_workdir,
                                                                           'metrics.jsonl'))]
  assert [r['step'] for r in records if 'train/loss' in r] == [11, 22]
  saved = json.loads((root / 'config.json').read_text())
  assert saved['num_steps'] == 22
  assert any(p.name.startswith('events.out.tfevents') for p in (root / 'tensorboard').iterdir())
  assert (root / 'training_curves.png').exists() and (root / 'confusion_matrix.png').exists()

  longer = run_cli('train', *args[:-2], '--config.num_steps=33',
                   '--config.checkpoint_every_steps=11', check=True)
  assert 'Resuming from the checkpoint at step 22' in longer.stdout
  records = [json.loads(line) for line in storage.read_lines(posixpath.join(gcs_workdir,
                                                                           'metrics.jsonl'))]
  assert [r['step'] for r in records if 'train/loss' in r] == [11, 22, 33]

  evaluation = run_cli('eval', f'--workdir={gcs_workdir}', '--checkpoint=latest', check=True)
  assert 'accuracy' in evaluation.stdout
  assert json.loads((root / 'eval_33.json').read_text())['step'] == 33


def test_missing_bucket_is_a_clear_error(gcs_emulator, tmp_path):
  result = run_cli('train', '--config=experiments/digits_cnn.py:smoke',
                   '--workdir=gs://no-such-bucket-jaxlab/run')
  assert result.returncode == 2
  assert 'no-such-bucket-jaxlab' in result.stderr and 'Traceback' not in result.stderr
