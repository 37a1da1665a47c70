"""The engine: a rule pack encoded for durable_rules, evaluated, and explained.

``encode`` compiles a pack to a durable_rules ruleset; ``durable`` is the only module
that calls durable_rules (hosts, facts as JSON, what keeps it from crashing, and the
speed tricks); ``explain`` turns the rules that fired into an explained result;
``triage`` holds :class:`TriageEngine`, whose ``triage`` reads as a report's path to its
result.
"""

from marrow_triage.engine.triage import EngineError, TriageEngine

__all__ = ["EngineError", "TriageEngine"]
