"""The engine: a rule pack encoded for durable_rules, evaluated, and explained.

Reads top to bottom as a report's path: ``encode`` (pack and report to durable_rules
facts), ``triage`` (the engine object and its durable_rules hosts), ``explain``
(fired rules to an explained result).
"""

from marrow_triage.engine.triage import EngineError, TriageEngine

__all__ = ["EngineError", "TriageEngine"]
