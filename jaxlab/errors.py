"""The one exception type that reaches the user as a message instead of a traceback."""


class UserError(Exception):
  """Bad input from the user: the message names the problem and the fix.

  The entry point prints the message alone and exits with code 2.
  """
