"""FHIR R4: the aftercare Questionnaire, QuestionnaireResponse in, RiskAssessment out."""

from marrow_triage.adapters.fhir.resources import *  # noqa: F403
from marrow_triage.adapters.fhir.resources import __all__ as __all__
