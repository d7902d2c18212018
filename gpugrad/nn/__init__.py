"""Neural-network pieces: ``functional`` (PyTorch spellings)."""

from . import functional  # noqa: F401
