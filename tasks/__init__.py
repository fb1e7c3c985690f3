"""What a user runs: ``ranvgg invert | texture | style | stack | gradcheck ...``, the same as
``python -m tasks.invert ...`` (one module per command; the table is in ``_commands.py``).

Each task is also a function (``tasks.invert.run(...)``) returning the image and the log:
quiet, and writing files only when given ``out=`` or ``log=``.
"""
