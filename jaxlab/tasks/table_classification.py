"""Classification of table rows: the `classification` task for `data.name=table`.

The same loss, metrics and predictions as `classification.Classification`; what differs is
the input: two features, 'numeric' and 'categorical' (`jaxlab.data.table_encoding`),
given to the model as two arguments (`tabular_mlp`), and `predict` reading CSV/Parquet
files, one prediction a row. `jaxlab.tasks.create` picks it when `task.name` is
classification and the data set is a table.
"""

from jaxlab.errors import UserError
from jaxlab.tasks import base, classification, table_inputs


class TableClassification(classification.Classification):

  def __init__(self, config, info, **kwargs):  # pylint: disable=super-init-not-called
    base.Task.__init__(self, config, info, **kwargs)
    if not info.num_classes:
      raise UserError(f'The label column of {info.name!r} holds numbers (floats), so the '
                      'model learns a number: use --config.task.name=regression (with '
                      "--config.checkpoint.best_metric=eval/rmse --config.checkpoint.best_mode=min)"
                      ', or give a label column of classes.')
    if float(config.data.mixup_alpha):
      raise UserError('--config.data.mixup_alpha mixes pairs of images; table rows take no '
                      'mixup: set it to 0.')
    self.input = 'numeric'
    self.augment, self.mixup_alpha = (), 0.0
    self.label_smoothing = float(config.task.label_smoothing)

  def batch_spec(self):
    return dict(table_inputs.spec(self.info), label=self.info.spec()['label'])

  def model_signature(self):
    return table_inputs.signature(self.info, self.info.num_classes)

  def model_inputs(self, batch, key, *, train):
    return table_inputs.model_inputs(batch, self.compute_dtype)

  def predict_spec(self):
    return table_inputs.spec(self.info)

  def predict_inputs(self, paths):
    return table_inputs.read_files(paths, self.info)

  def json_inputs(self, instances):
    """A batch from JSON rows {column: value} (jaxlab serve)."""
    return table_inputs.json_rows(instances, self.info)
