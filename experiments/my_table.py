"""Your own table (CSV or Parquet), one example a row, with an MLP over its columns.

  jaxlab train --config=experiments/my_table.py --config.data.path=TABLE.csv \\
      --config.data.label_column=CLASS_COLUMN --workdir=/tmp/jaxlab/my_table
  jaxlab predict --workdir=/tmp/jaxlab/my_table new_rows.csv

TABLE.csv is your table, CLASS_COLUMN the column to predict.
`:classification` (the default) predicts a column of classes (strings, integers,
booleans); `:regression` a column of numbers (floats), reporting RMSE, MAE and R².
20% of the rows are held out for eval (data.validation_split), unless data.path is a
folder holding train.csv and test.csv. Numbers are standardised and categories embedded
with statistics of the training rows only (docs: Your files). Add `smoke` for a few
steps of a tiny model (tests): `--config=experiments/my_table.py:regression,smoke`.
"""

from jaxlab import config as config_lib


def get_config(arg=None):
  task, smoke = config_lib.variant(arg, ('classification', 'regression'), 'classification')
  c = config_lib.defaults()
  c.data.name = 'table'  # give --config.data.path=FILE.csv and --config.data.label_column
  c.data.batch_size = 64  # rows per step

  c.task.name = task
  if task == 'regression':  # keep the checkpoint of the lowest test RMSE
    c.checkpoint.best_metric = 'eval/rmse'
    c.checkpoint.best_mode = 'min'

  c.model.name = 'tabular_mlp'
  c.model.hidden = (128, 128)  # dense layers over [numbers ; embeddings]
  c.model.embed_dim = 8  # learned numbers per category
  c.model.dropout_rate = 0.1

  c.optimizer.name = 'adamw'
  c.optimizer.learning_rate = 1e-3  # peak learning rate
  c.optimizer.schedule = 'warmup_cosine'  # linear warmup, cosine decay
  c.optimizer.warmup_percent = 5.0  # of training
  c.optimizer.weight_decay = 1e-4  # on kernels

  c.num_epochs = 30  # passes over the training rows
  c.steps_per_loop = 50  # steps per compiled call
  c.log_every_steps = 50  # train metrics interval
  c.eval_every_steps = 500  # evaluation interval
  c.checkpoint_every_steps = 500  # with the evaluation
  if smoke:  # seconds, for tests
    c.data.batch_size = 16
    c.model.hidden = (16,)
    c.model.embed_dim = 4
    c.model.dropout_rate = 0.0
    c.num_epochs = 2
    c.steps_per_loop = 4
    c.log_every_steps = 4
    c.eval_every_steps = 0
    c.checkpoint_every_steps = 0
  return c
