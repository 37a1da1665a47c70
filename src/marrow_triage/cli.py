"""Deprecated location: use ``marrow_triage.adapters.cli``."""

import warnings

from marrow_triage.adapters.cli import *  # noqa: F403
from marrow_triage.adapters.cli import __all__ as __all__

warnings.warn(
    "marrow_triage.cli moved to marrow_triage.adapters.cli",
    DeprecationWarning,
    stacklevel=2,
)
