"""The one error type that reaches the user as a single line.

Raise `UserError` for bad input: the message names the problem and the fix,
e.g. ``UserError("unknown language 'xx': choose from fr, ro; or build it with
`ptjf corpus build --langs xx`")``. The command line prints it as one line and
exits with status 2; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
  """Bad input from the user, reported as one line that says what to do."""
