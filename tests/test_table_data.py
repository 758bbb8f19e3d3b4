"""data.name=table: CSV and Parquet tables written by the tests with pyarrow; the
classification and regression round trips, missing values, unknown categories, and the
training-split statistics saved with the run."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet
import pytest

from jaxlab import data as data_lib
from jaxlab.data import holdout, table_encoding
from jaxlab.errors import UserError
from tests import user_files
from tests.conftest import load_config


def _config(path, arg='smoke', **overrides):
  return load_config('my_table', arg, data__path=str(path), plots=False, **overrides)


@pytest.fixture(scope='module')
def people_csv(tmp_path_factory):
  path = tmp_path_factory.mktemp('table') / 'people.csv'
  pyarrow.csv.write_csv(user_files.people_table(), path)
  return path


@pytest.fixture(scope='module')
def classifier(people_csv, tmp_path_factory):
  """(workdir, config) of a smoke classification run predicting 'kind' from age and city."""
  from jaxlab.train import loop
  workdir = tmp_path_factory.mktemp('classifier')
  config = _config(people_csv, data__label_column='kind', data__feature_columns=('age', 'city'),
                   num_epochs=4)
  loop.run(config, str(workdir))
  return workdir, config


def test_statistics_come_from_the_training_rows_only(people_csv):
  splits = data_lib.load(_config(people_csv, data__label_column='kind').data)
  encoding = splits.info.preprocessing['table']
  table = pyarrow.csv.read_csv(people_csv)
  kept, held = holdout.split(table.num_rows, 0.2, 0, '')
  age = table_encoding.numbers(table.column('age'))
  train_age = age[kept][~np.isnan(age[kept])]
  (numeric_age,) = [c for c in encoding['numeric'] if c['column'] == 'age']
  assert numeric_age['mean'] == pytest.approx(train_age.mean())
  assert numeric_age['std'] == pytest.approx(train_age.std())
  assert numeric_age['mean'] != pytest.approx(np.nanmean(age))  # not the whole table's
  assert len(splits.train) == len(kept) and len(splits.test) == len(held)


def test_missing_values_are_imputed_with_an_indicator_and_get_their_own_token(people_csv):
  splits = data_lib.load(_config(people_csv, data__label_column='kind',
                                 data__feature_columns=('age', 'city', 'rooms')).data)
  encoding = splits.info.preprocessing['table']
  assert [c['indicator'] for c in encoding['numeric']] == [True, False]  # age has gaps
  rows = pa.table({'age': pa.array([None, 50.0]), 'city': pa.array([None, 'Oslo']),
                   'rooms': [2, 2]})
  features = table_encoding.features(encoding, rows)
  age, rooms = encoding['numeric']
  np.testing.assert_allclose(features['numeric'][:, 0], [0.0, (50 - age['mean']) / age['std']],
                             rtol=1e-6)
  np.testing.assert_array_equal(features['numeric'][:, 2], [1.0, 0.0])  # age's indicator
  (city,) = encoding['categorical']
  assert features['categorical'][0, 0] == city['offset'] + table_encoding.MISSING
  assert features['categorical'][1, 0] == city['offset'] + 2 + city['values'].index('Oslo')
  assert splits.info.spec()['numeric'][0] == (3,)


def test_classification_round_trip_predicts_one_line_per_row_with_an_unknown_category(
    classifier, tmp_path, capsys):
  from jaxlab.commands import predict
  from jaxlab.inference import evaluate
  from jaxlab.inference import trained_run as inference
  workdir, _ = classifier
  rows = tmp_path / 'new.csv'
  pyarrow.csv.write_csv(pa.table({'age': pa.array([31.0, None, 70.0]),
                                  'city': pa.array(['Tokyo', None, 'Oslo'])}), rows)
  assert predict.main(str(workdir), [str(rows)], checkpoint='latest', top_k_count=2) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert [line.split(':')[0] for line in lines] == [f'{rows} row {i}' for i in (1, 2, 3)]
  assert all({'high', 'low'} <= set(line.split()) for line in lines)
  run = inference.load(str(workdir), 'latest')
  batch, _, _ = run.task.predict_inputs([str(rows)])
  (city,) = run.info.preprocessing['table']['categorical']
  assert batch['categorical'][0, 0] == city['offset'] + table_encoding.UNSEEN
  result = evaluate.evaluate(run)
  assert 0 <= result['accuracy'] <= 1 and result['num_examples'] == 40


def test_eval_and_predict_reuse_the_saved_statistics(classifier, people_csv, tmp_path):
  workdir, config = classifier
  saved = json.loads((workdir / 'dataset_info.json').read_text())['preprocessing']['table']
  shifted = tmp_path / 'people.csv'  # the same table with every age 100 years older
  table = pyarrow.csv.read_csv(people_csv)
  table = table.set_column(0, 'age', pa.compute.add(table.column('age'), 100.0))
  pyarrow.csv.write_csv(table, shifted)
  config.unlock()
  config.data.path = str(shifted)
  reloaded = data_lib.load(config.data, str(workdir)).info.preprocessing['table']
  assert reloaded == saved
  refitted = data_lib.load(config.data).info.preprocessing['table']
  assert refitted['numeric'][0]['mean'] == pytest.approx(saved['numeric'][0]['mean'] + 100)


def test_regression_on_parquet_reports_rmse_and_predicts_numbers(tmp_path, capsys):
  from jaxlab.commands import predict
  from jaxlab.train import loop
  path = tmp_path / 'people.parquet'
  pyarrow.parquet.write_table(user_files.people_table(), path)
  config = _config(path, 'regression,smoke', data__label_column='income',
                   data__feature_columns=('age', 'city', 'rooms'), num_epochs=6)
  summary = loop.run(config, str(tmp_path / 'w'))
  assert {'rmse', 'mae', 'r2', 'loss'} <= set(summary['eval'])
  assert summary['eval']['rmse'] > 0
  label = json.loads((tmp_path / 'w' / 'dataset_info.json').read_text())
  assert label['features']['label'] == [[], 'float32'] and label['num_classes'] == 0
  capsys.readouterr()  # the training log
  assert predict.main(str(tmp_path / 'w'), [str(path)], checkpoint='latest') == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 200 and all(line.split()[-2] == 'income' for line in lines)
  float(lines[0].split()[-1])


def test_regression_metrics_are_in_the_labels_units():
  from jaxlab.tasks import regression
  info = data_lib.DatasetInfo('t', {'x': ((2,), 'float32'), 'label': ((), 'float32')},
                              preprocessing={'table': {'label': {'mean': 100.0, 'std': 10.0}}})
  task = regression.Regression(load_config('my_table', 'regression,smoke'), info)
  metrics = task.eval_metrics({'prediction': np.array([110.0, 90.0, 100.0]),
                               'label': np.array([100.0, 100.0, 100.0])})
  assert metrics['rmse'] == pytest.approx(np.sqrt(200 / 3))
  assert metrics['mae'] == pytest.approx(20 / 3)
  assert metrics['loss'] == pytest.approx(2 / 3)  # in standardised units


def test_float_label_with_the_classification_task_says_to_use_regression(people_csv):
  from jaxlab import tasks
  config = _config(people_csv, data__label_column='income')
  info = data_lib.load(config.data).info
  with pytest.raises(UserError, match='task.name=regression'):
    tasks.create(config, info, compute_dtype=np.float32)


@pytest.mark.parametrize('overrides,message', [
    (dict(data__label_column='nope'), 'not a column'),
    (dict(), 'label_column is not set'),
    (dict(data__label_column='kind', data__feature_columns=('kind',)), 'cannot be an input'),
    (dict(data__label_column='kind', data__feature_columns=('agee',)), 'not columns'),
])
def test_bad_columns_are_clear_errors(people_csv, overrides, message):
  with pytest.raises(UserError, match=message):
    data_lib.load(_config(people_csv, **overrides).data)


def test_rows_without_a_label_are_left_out_with_a_warning(tmp_path, capfd):
  path = tmp_path / 'gaps.csv'
  pyarrow.csv.write_csv(pa.table({'x': np.arange(20.0), 'y': pa.array(['a', 'b', None, 'a'] * 5)}),
                        path)
  splits = data_lib.load(_config(path, data__label_column='y').data)
  assert len(splits.train) + len(splits.test) == 15
  assert 'whose label is missing' in capfd.readouterr().err
  assert splits.info.class_names == ('a', 'b')


def test_a_folder_with_train_and_test_files_is_split_by_them(tmp_path):
  table = user_files.people_table(50)
  pyarrow.csv.write_csv(table.slice(0, 40), tmp_path / 'train.csv')
  pyarrow.parquet.write_table(table.slice(40), tmp_path / 'test.parquet')
  splits = data_lib.load(_config(tmp_path, data__label_column='kind').data)
  assert (len(splits.train), len(splits.test)) == (40, 10)


def test_serve_reads_json_rows_as_the_table_encodes_them(classifier):
  from jaxlab.inference import trained_run as inference
  workdir, _ = classifier
  run = inference.load(str(workdir), 'latest')
  batch = run.task.json_inputs([{'age': 31, 'city': 'Oslo'}, {'age': None, 'city': 'Mars'}])
  expected = table_encoding.features(run.info.preprocessing['table'], pa.table(
      {'age': pa.array([31.0, None]), 'city': ['Oslo', 'Mars']}))
  np.testing.assert_array_equal(batch['numeric'], expected['numeric'])
  np.testing.assert_array_equal(batch['categorical'], expected['categorical'])
