"""fastselu: SELU activation (forward and backward) for NumPy arrays, accurate to 1 ULP.

Import order matters: `_config` validates the FASTSELU_* environment (ImportError on a bad value)
before `_backends` picks and imports a backend.
"""

from ._version import __version__
from ._constants import ALPHA, SCALE
from ._config import get_num_threads, set_num_threads
from ._backends import available_backends, get_backend, set_backend, show_config
from ._api import SELU, selu, selu_, selu_backward
from ._api import (
    alpha_dropout,
    alpha_dropout_backward,
    lecun_normal,
    selu_alpha_dropout,
    selu_alpha_dropout_backward,
)
from . import _threadpool  # noqa: F401  (registers a threadpoolctl controller if it is installed)

__all__ = [
    "ALPHA",
    "SCALE",
    "SELU",
    "__version__",
    "alpha_dropout",
    "alpha_dropout_backward",
    "available_backends",
    "get_backend",
    "get_num_threads",
    "lecun_normal",
    "selu",
    "selu_",
    "selu_alpha_dropout",
    "selu_alpha_dropout_backward",
    "selu_backward",
    "set_backend",
    "set_num_threads",
    "show_config",
]
