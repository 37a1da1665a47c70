"""Deprecated location: use ``marrow_triage.adapters.cli``.

Every name the old module had is still found here, read from
``marrow_triage.adapters.cli.main``.
"""

import importlib
import warnings
from typing import Any

_moved = importlib.import_module("marrow_triage.adapters.cli.main")

__all__ = list(_moved.__all__)

warnings.warn(
    "marrow_triage.cli moved to marrow_triage.adapters.cli",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> Any:
    return getattr(_moved, name)
