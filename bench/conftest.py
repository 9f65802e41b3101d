"""Let ``pytest bench/`` import fastselu from this checkout when it is not installed."""

import os
import sys

try:
    import fastselu  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
