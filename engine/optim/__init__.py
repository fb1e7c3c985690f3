"""The optimisers over the image: where host and device meet.

    lbfgs          scipy's L-BFGS-B on the host in float64; each evaluation copies the image to
                   the device and the loss and gradient back (scipy_lbfgsb.py)
    lbfgs_device   L-BFGS whose vectors stay on the device, written against ``xp``
                   (device_lbfgs.py); only the loss crosses to the host

Both return a ``Result`` (the last good iterate, its loss, iterations, evaluations, status) and
keep what was won on Ctrl-C, a non-finite loss or a failing callback.
"""
from .device_lbfgs import lbfgs_device
from .scipy_lbfgsb import NonFiniteError, Result, lbfgs

__all__ = ["lbfgs", "lbfgs_device", "Result", "NonFiniteError"]
