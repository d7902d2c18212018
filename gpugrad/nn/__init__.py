"""Neural-network pieces: ``functional`` (PyTorch spellings), Keras-style layers (``Dense``), models
(``Sequential``), ``activations`` and ``initializers``."""

from . import activations, functional, initializers  # noqa: F401
from .layers import Dense, Layer  # noqa: F401
from .model import History, Sequential  # noqa: F401
