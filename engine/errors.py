"""The one exception type a user ever sees as a message instead of a traceback."""


class UserError(Exception):
    """Bad input or an impossible request: the message names the problem and the fix.

    The command-line tasks print ``error: <message>`` and exit with status 2.
    """


def shown(value, width: int = 60) -> str:
    """``repr(value)`` on one line and at most ``width`` characters, for a message about it
    (an array's repr spans lines and can be megabytes)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= width else text[:width - 3] + "..."
