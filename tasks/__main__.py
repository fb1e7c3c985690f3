"""``python -m tasks COMMAND ...``: the ``ranvgg`` command without installing it."""
import sys

from .cli.ranvgg import main

if __name__ == "__main__":
    sys.exit(main())
