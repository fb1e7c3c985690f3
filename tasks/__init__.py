"""What a user runs: ``python -m tasks.invert | texture | style | gradcheck``.

Each task is also a function (``tasks.invert.run(...)``) returning the image and the log.
"""
