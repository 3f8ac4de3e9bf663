"""newstracker: a media-monitoring tracker.

Feeds → full text → topic tags → stories → a SQL store, with a daily digest.
The CLI (``tracker``) and the scheduler are thin shells over this library.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["__version__"]
