"""Deprecated location: use ``marrow_triage.adapters.service``."""

import warnings

from marrow_triage.adapters.service import *  # noqa: F403
from marrow_triage.adapters.service import __all__ as __all__

warnings.warn(
    "marrow_triage.service moved to marrow_triage.adapters.service",
    DeprecationWarning,
    stacklevel=2,
)
