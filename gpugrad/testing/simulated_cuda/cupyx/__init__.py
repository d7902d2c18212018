"""Simulated ``cupyx``: the part gpugrad uses (``cupyx.scipy.special``)."""

from . import scipy  # noqa: F401
