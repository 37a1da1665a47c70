"""Deprecated location: use ``marrow_triage.adapters.fhir``."""

import warnings

from marrow_triage.adapters.fhir import *  # noqa: F403
from marrow_triage.adapters.fhir import __all__ as __all__

warnings.warn(
    "marrow_triage.fhir moved to marrow_triage.adapters.fhir",
    DeprecationWarning,
    stacklevel=2,
)
