"""Request payloads as model batches, read as `jaxlab predict` reads files: image bytes
converted as the training images were, WAV bytes resampled and fitted, text tokenized
by the run's tokenizer; or JSON arrays already shaped like the model's input. Anything
else raises `BadInput`, which the server answers with a 4xx and a one-line JSON error.
"""

import io

import numpy as np

MAX_INSTANCES = 1024  # examples in one request


class BadInput(Exception):
  """A request the server refuses: `status` (4xx) and a one-line message."""

  def __init__(self, message, status=400):
    super().__init__(message)
    self.status = status


def kind(task):
  """What files the task reads: 'image', 'audio', 'text', or None (JSON arrays only)."""
  from jaxlab.tasks import classification, detection, language_model
  if getattr(task, 'input_kind', None):  # a task that says what it reads (speech_recognition)
    return task.input_kind
  if hasattr(task, 'text_batch'):  # a task that reads texts itself (seq2seq)
    return 'text'
  if isinstance(task, detection.Detection):
    return 'image'
  if isinstance(task, language_model.LanguageModel):
    return 'text'
  if isinstance(task, classification.Classification):
    return task.input if task.input in ('image', 'audio') else 'text'
  return None


class Decoder:
  """Turns one request's payload into a batch for `source`'s model."""

  def __init__(self, source):
    self.task = source.task
    self.info = source.task.info
    self.kind = kind(source.task)
    self.spec = source.input_spec
    self._encode = None

  def example(self):
    """One all-zero example (for compiling every batch size at start-up)."""
    return {k: np.zeros(shape, dtype) for k, (shape, dtype) in self.spec.items()}

  def files(self, files):
    """A batch from [(name, bytes)] of the task's file kind."""
    _check_count(len(files), 'files')
    if self.kind == 'image' and hasattr(self.task, 'file_batch'):  # images and their sizes
      batch, _, errors = self.task.file_batch(files)
      for name, reason in errors.items():
        raise BadInput(f'Cannot decode the image {name!r} ({reason}); send a PNG, JPEG, GIF, '
                       'BMP or other file that Pillow reads.')
      return batch
    if self.kind == 'image':
      return {'image': np.stack([self._image(name, data) for name, data in files])}
    if self.kind == 'audio' and hasattr(self.task, 'file_batch'):  # clips and their lengths
      batch, _, errors = self.task.file_batch(files)
      for name, reason in errors.items():
        raise BadInput(f'Cannot use the WAV file {name!r} ({reason}); send 8/16/32-bit PCM or '
                       'float WAV.')
      return batch
    if self.kind == 'audio':
      return {'audio': np.stack([self._wav(name, data) for name, data in files])}
    if self.kind == 'text':
      return self.texts([utf8(name, data) for name, data in files])
    raise BadInput(f'This model ({type(self.task).__name__}) reads no files; send JSON '
                   f'{{"instances": [...]}} shaped like its inputs {self._shapes()}.', 415)

  def texts(self, texts):
    """A batch from a list of strings, tokenized as the training text was."""
    from jaxlab.tasks import text_inputs
    if self.kind != 'text':
      raise BadInput(f'This model reads {self.kind or "arrays"}, not text; send '
                     f'{self.what()}.', 415)
    _check_count(len(texts), 'texts')
    if not all(isinstance(t, str) and t for t in texts):
      raise BadInput('Every text must be a non-empty string.')
    if hasattr(self.task, 'text_batch'):
      return self.task.text_batch(texts)
    if self._encode is None:
      self._encode = text_inputs.tokenizer(self.task).encode
    from jaxlab.tasks import language_model
    if isinstance(self.task, language_model.LanguageModel):
      return text_inputs.language_model_batch(self.task, texts, self._encode)
    return text_inputs.classification_batch(self.task, texts, self._encode)

  def instances(self, instances):
    """A batch from JSON instances: arrays of one example's input shape (a dict of them
    by input name when the model takes several inputs)."""
    if not isinstance(instances, list) or not instances:
      raise BadInput('"instances" must be a non-empty list of examples, e.g. '
                     f'{{"instances": [x1, x2]}} with each x shaped {self._shapes()}.')
    _check_count(len(instances), 'instances')
    if hasattr(self.task, 'json_inputs') and all(isinstance(i, dict) for i in instances) and \
        not set(instances[0]) <= set(self.spec):  # raw rows, e.g. {"age": 31, "city": "Oslo"}
      try:
        return self.task.json_inputs(instances)
      except ValueError as error:
        raise BadInput(f'Cannot read the instances as rows of the table: {error}.') from None
    names = list(self.spec)
    if len(names) == 1:
      columns = {names[0]: instances}
    else:
      for instance in instances:
        if not isinstance(instance, dict) or set(instance) != set(names):
          raise BadInput(f'Each instance must be an object with exactly the inputs '
                         f'{names}; got {_keys(instance)}.')
      columns = {name: [instance[name] for instance in instances] for name in names}
    return {name: self._array(name, values) for name, values in columns.items()}

  def _array(self, name, values):
    shape, dtype = self.spec[name]
    try:
      array = np.asarray(values)
    except ValueError:
      raise BadInput(f'"{name}" instances are ragged: each must be an array of shape '
                     f'{list(shape)}.') from None
    if array.dtype.kind not in 'iuf':
      raise BadInput(f'"{name}" instances must hold numbers only (found {_what_dtype(array)}); '
                     f'each is an array of shape {list(shape)} of {dtype.name}.')
    if array.shape[1:] != tuple(shape):
      raise BadInput(f'Each "{name}" instance must have shape {list(shape)}; got '
                     f'{list(array.shape[1:])}.')
    if dtype.kind in 'iu' and (array.dtype.kind == 'f' and not np.all(np.mod(array, 1) == 0)):
      raise BadInput(f'"{name}" takes integers ({dtype.name}); got fractional values.')
    return array.astype(dtype)

  def _image(self, name, data):
    from jaxlab.tasks import image_inputs
    try:
      return image_inputs.load_image(io.BytesIO(data), self.info)
    except Exception as error:  # pylint: disable=broad-except  # whatever Pillow raises
      from PIL import UnidentifiedImageError
      reason = ('not an image format Pillow knows' if isinstance(error, UnidentifiedImageError)
                else _first_line(error))
      raise BadInput(f'Cannot decode the image {name!r} ({reason}); send a PNG, JPEG, GIF, BMP '
                     'or other file that Pillow reads.') from None

  def _wav(self, name, data):
    from jaxlab.data import audio
    (num_samples,), _ = self.spec['audio']
    try:
      samples, rate = audio.decode_wav(data)
      clip = audio.fit_length(audio.resample(samples, rate, self.info.sample_rate), num_samples)
    except (OSError, ValueError, EOFError) as error:
      raise BadInput(f'Cannot decode the WAV file {name!r} ({_first_line(error)}); send '
                     '8/16/32-bit PCM or float WAV.') from None
    return clip.astype(np.float32)

  def _shapes(self):
    return {k: list(shape) for k, (shape, _) in self.spec.items()}

  def what(self):
    if self.kind == 'image':
      return 'image files (multipart/form-data, or one image/png or image/jpeg body)'
    if self.kind == 'audio':
      return 'WAV files (multipart/form-data, or one audio/wav body)'
    return f'JSON {{"instances": [...]}} shaped {self._shapes()}'


def multipart(body, content_type):
  """([(file name, bytes)], {field: text}) of a multipart/form-data body, parsed in memory
  by python-multipart (Starlette's form parsing spools each file to a temporary file:
  twice the cost for the small files a model takes)."""
  from python_multipart import multipart as parser_lib
  _, params = parser_lib.parse_options_header(content_type)
  if not params.get(b'boundary'):
    raise BadInput('The multipart/form-data Content-Type has no boundary.')
  files, fields, part = [], {}, {}

  def begin():
    part.update(headers={}, field=b'', value=b'', data=[])

  def header_end():
    part['headers'][part['field'].lower()] = part['value']
    part.update(field=b'', value=b'')

  def end():
    _, disposition = parser_lib.parse_options_header(
        part['headers'].get(b'content-disposition', b''))
    name = disposition.get(b'name', b'').decode('utf-8', 'replace')
    data = b''.join(part['data'])
    if b'filename' in disposition:
      files.append((disposition[b'filename'].decode('utf-8', 'replace') or name, data))
    else:
      fields[name] = data.decode('utf-8', 'replace')
    if len(files) + len(fields) > MAX_INSTANCES:
      raise BadInput(f'The request holds more than {MAX_INSTANCES} parts.', 413)

  def add(key):
    return lambda data, start, stop: part.__setitem__(key, part[key] + data[start:stop])

  parser = parser_lib.MultipartParser(params[b'boundary'], dict(
      on_part_begin=begin, on_header_field=add('field'), on_header_value=add('value'),
      on_header_end=header_end, on_part_end=end,
      on_part_data=lambda data, start, stop: part['data'].append(data[start:stop])))
  try:
    parser.write(body)
    parser.finalize()
  except parser_lib.MultipartParseError as error:
    raise BadInput(f'Malformed multipart/form-data body ({_first_line(error)}).') from None
  return files, fields


def _check_count(count, what):
  if not count:
    raise BadInput(f'The request holds no {what}.')
  if count > MAX_INSTANCES:
    raise BadInput(f'The request holds {count} {what}; at most {MAX_INSTANCES} per request.',
                   413)


def utf8(name, data):
  try:
    return data.decode('utf-8')
  except UnicodeDecodeError:
    raise BadInput(f'The file {name!r} is not UTF-8 text.') from None


def _keys(value):
  return sorted(value) if isinstance(value, dict) else type(value).__name__


def _what_dtype(array):
  return {'U': 'strings', 'O': 'nulls, objects or mixed types', 'b': 'booleans'}.get(
      array.dtype.kind, array.dtype.name)


def _first_line(error):
  text = str(error).strip().splitlines()
  return text[0] if text else type(error).__name__
