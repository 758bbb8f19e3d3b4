"""--storage URLs: checked before Optuna sees them, so that a typo, a missing database
driver or a server that cannot be reached is one paragraph naming the fix (exit 2), and
never shows a password.

SQLAlchemy 2.1 reads `postgresql://` with psycopg 3 (the `sweep` extra installs
`psycopg[binary]`); `postgresql+psycopg2://` picks psycopg2 where that is installed.
"""

import re

from jaxlab.errors import UserError

_EXAMPLES = ('sqlite:////abs/path/study.db, or postgresql://USER:PASSWORD@HOST:5432/DATABASE '
             'for a study that several machines share')
# Drivers a URL's dialect may need, as pip names them.
_PACKAGES = {'psycopg': "psycopg[binary] (pip install 'jaxlab[sweep]')",
             'psycopg2': 'psycopg2-binary', 'MySQLdb': 'mysqlclient', 'pymysql': 'pymysql'}


def shown(url):
  """The URL with its password masked, for messages."""
  try:
    from sqlalchemy.engine import make_url
    return make_url(url).render_as_string(hide_password=True)
  except Exception:  # pylint: disable=broad-except
    return re.sub(r'(://[^:/@]*:)[^@]*@', r'\1***@', url)


def check(url):
  """Raises UserError unless `url` parses, names a known database and its driver imports."""
  from sqlalchemy.engine import make_url
  from sqlalchemy.exc import ArgumentError, NoSuchModuleError
  try:
    parsed = make_url(url)
  except ArgumentError:
    raise UserError(f'--storage={shown(url)} is not a database URL. Give an SQLAlchemy URL, '
                    f'e.g. {_EXAMPLES}.') from None
  try:
    dialect = parsed.get_dialect()
  except NoSuchModuleError:
    hint = (' (SQLAlchemy spells PostgreSQL postgresql://, not postgres://)'
            if parsed.drivername.startswith('postgres') else '')
    raise UserError(f'--storage={shown(url)}: unknown database {parsed.drivername!r}{hint}. '
                    f'Give an SQLAlchemy URL, e.g. {_EXAMPLES}.') from None
  try:
    dialect.import_dbapi()
  except ImportError as error:
    module = (getattr(error, 'name', None) or '').split('.')[0]
    package = _PACKAGES.get(module, module or 'its driver')
    raise UserError(f'--storage={shown(url)} needs the Python database driver {module!r}, which '
                    f'is not installed: pip install {package}.') from None


def unreachable(url, error):
  """The UserError for a storage that parsed but could not be opened."""
  lines = [line.strip() for line in str(error).splitlines()
           if line.strip() and not line.strip().startswith('(Background on this error')]
  reason = re.sub(r'\s+', ' ', ' '.join(lines))
  if len(reason) > 400:
    reason = reason[:400] + '...'
  return UserError(f'Could not open the study storage {shown(url)} ({type(error).__name__}: '
                   f'{reason}). Check that the database server is running and reachable from '
                   'this machine, that the database exists (PostgreSQL: createdb DATABASE) and '
                   f'that the user may connect; or give another --storage, e.g. {_EXAMPLES}.')
