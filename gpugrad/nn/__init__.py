"""Neural-network pieces: ``functional`` (PyTorch spellings), Keras-style layers (``Dense``, ``Dropout``,
``Flatten``, ``Activation``, ``Input``), models
(``Sequential``), ``activations`` and ``initializers``."""

from . import activations, functional, initializers  # noqa: F401
from .layers import Activation, Dense, Dropout, Flatten, Input, InputLayer, Layer  # noqa: F401
from .model import History, Sequential  # noqa: F401
from .saving import ModelFileError, load_model  # noqa: F401
