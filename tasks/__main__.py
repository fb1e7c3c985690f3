"""``python -m tasks COMMAND ...``: the ``ranvgg`` command without installing it."""
import sys

from ._commands import main

if __name__ == "__main__":
    sys.exit(main())
