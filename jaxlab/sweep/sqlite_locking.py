"""SQLite studies shared by several sweep workers: atomic reads-then-writes."""


def lock_transactions_at_begin(engine):
  """Each transaction takes SQLite's write lock when it begins (BEGIN IMMEDIATE).

  Why: pysqlite opens a transaction only at the first write, and SQLite ignores Optuna's
  SELECT ... FOR UPDATE, so two workers could both read a queued trial as WAITING and
  both set it RUNNING: they trained one trial in one workdir, and the sweep failed. With
  the lock taken first, Optuna's read-then-update is atomic, as it is on PostgreSQL.
  SQLAlchemy's documented recipe for pysqlite."""
  from sqlalchemy import event
  event.listen(engine, 'connect',
               lambda connection, _: setattr(connection, 'isolation_level', None))
  event.listen(engine, 'begin', lambda connection: connection.exec_driver_sql('BEGIN IMMEDIATE'))
  engine.dispose()  # pooled connections, opened before the listeners, start over with them
