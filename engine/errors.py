"""The one exception type a user ever sees as a message instead of a traceback."""


class UserError(Exception):
    """Bad input or an impossible request: the message names the problem and the fix.

    The command-line tasks print ``error: <message>`` and exit with status 2.
    """
