"""Files sorted into one folder per class, found as Keras's `image_dataset_from_directory`
(and `text_dataset_from_directory`) finds them.

Layouts:
  DIR/<class>/...                        one set; data.validation_split holds out the test
  DIR/train/<class>/... + DIR/test/<class>/...   (or DIR/validation/) a given test split

As Keras does: the classes are the subfolders, in sorted (alphabetical) order, and a class
is its index in that order; a class folder is read recursively, its files in sorted order;
only files with the given extensions count (any case: .JPG too); symbolic links to folders
are not followed. Beyond Keras: files and folders whose names start with '.' are ignored
(macOS's `._photo.jpg` twins would otherwise be read as broken images).

An empty class folder is kept as a class, with a warning, as Keras keeps it (silently):
the class indices stay those of the folder listing, so a model's outputs keep their
meaning when the folder fills later. No class folder at all, or no file in any, is an
error naming the expected layout.
"""

import dataclasses
import os

from jaxlab.errors import UserError
from jaxlab.runtime import messages

TEST_FOLDERS = ('test', 'validation')


@dataclasses.dataclass(frozen=True)
class FileIndex:
  class_names: tuple
  train: tuple  # (paths, labels) as lists
  test: tuple = None  # the same for a given test folder, else None
  root: str = ''


def index(root, extensions, what='files'):
  """The FileIndex of `root` (see the module docstring); UserError if it is no such tree."""
  root = os.path.expanduser(root)
  if not os.path.isdir(root):
    raise UserError(f'--config.data.path={root} is not a folder. {_layout(what, extensions)}')
  subfolders = _subfolders(root)
  train_dir = os.path.join(root, 'train') if 'train' in subfolders else root
  test_name = next((name for name in TEST_FOLDERS if name in subfolders), None)
  test_dir = os.path.join(root, test_name) if train_dir != root and test_name else None
  class_names = tuple(_subfolders(train_dir))
  if not class_names:
    raise UserError(f'{train_dir} holds no class folders. {_layout(what, extensions)}')
  train = _files(train_dir, class_names, extensions, what, warn_empty=True)
  test = None
  if test_dir is not None:
    unknown = sorted(set(_subfolders(test_dir)) - set(class_names))
    if unknown:
      raise UserError(f'{test_dir} has class folders {unknown} that {train_dir} lacks: a class '
                      'must be trained on to be tested. Add them to the training folder or '
                      'remove them from the test folder.')
    test = _files(test_dir, class_names, extensions, what, warn_empty=False)
  return FileIndex(class_names, train, test, root)


def _subfolders(folder):
  return sorted(name for name in os.listdir(folder)
                if not name.startswith('.') and os.path.isdir(os.path.join(folder, name)))


def _files(folder, class_names, extensions, what, warn_empty):
  paths, labels, empty = [], [], []
  for label, name in enumerate(class_names):
    found = list(files_under(os.path.join(folder, name), extensions))
    if not found:
      empty.append(name)
    paths += found
    labels += [label] * len(found)
  if not paths:
    raise UserError(f'The class folders of {folder} ({", ".join(class_names)}) hold no '
                    f'{what} ending in {", ".join(extensions)}. {_layout(what, extensions)}')
  if empty and warn_empty:
    messages.warn(f'jaxlab: warning: class folder(s) {", ".join(empty)} of {folder} hold no {what}; '
          'each stays a class (its index is its place in the sorted folder names, as in '
          'Keras), with no examples to learn it from.')
  return paths, labels


def files_under(folder, extensions):
  """Files of `folder` and its subfolders with one of `extensions` (any case), hidden
  names left out, sorted by folder then name; symbolic links to folders not followed."""
  if not os.path.isdir(folder):
    return
  for where, _, names in sorted(os.walk(folder), key=lambda entry: entry[0]):
    if any(part.startswith('.') for part in os.path.relpath(where, folder).split(os.sep)
           if part != '.'):
      continue
    for name in sorted(names):
      if not name.startswith('.') and name.lower().endswith(tuple(extensions)):
        yield os.path.join(where, name)


def _layout(what, extensions):
  shown = ', '.join(f'*{e}' for e in extensions[:3]) + ', ...'
  return (f'Sort the {what} into one folder per class: DIR/<class name>/{{{shown}}} (the test '
          'share held out by --config.data.validation_split), or DIR/train/<class name>/ and '
          'DIR/test/<class name>/, and pass --config.data.path=DIR.')
