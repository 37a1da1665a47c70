"""Deprecated location: use ``marrow_triage.adapters.fhir``.

Every name the old module had is still found here, read from
``marrow_triage.adapters.fhir.resources``.
"""

import importlib
import warnings
from typing import Any

_moved = importlib.import_module("marrow_triage.adapters.fhir.resources")

__all__ = list(_moved.__all__)

warnings.warn(
    "marrow_triage.fhir moved to marrow_triage.adapters.fhir",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> Any:
    return getattr(_moved, name)
