"""What a user runs: ``ranvgg invert | texture | style | stack | gradcheck ...``, the same as
``python -m tasks.invert ...`` (one module per command; the table is in ``ranvgg.py``).

Each task is also a function (``tasks.invert.run(...)``) returning the image and the log:
quiet, and writing files only when given ``out=`` or ``log=``.
"""
import os as _os

__ranvgg__ = True  # ``ranvgg`` checks it: another package named ``tasks`` is told apart

# scipy's L-BFGS-B step runs on scipy's own OpenBLAS, whose threads then spin for a while and
# slow NumPy's GEMMs in the next evaluation (one pool3 evaluation at 128 px: 86 ms alone, 138 ms
# between L-BFGS-B steps, 109 ms with this). It applies only when set before NumPy is first
# imported, which the command line guarantees; a user's own setting wins.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
