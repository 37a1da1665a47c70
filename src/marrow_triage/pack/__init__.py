"""The rule pack: report facts, condition trees, the pack's schema, loading, checks, catalogue.

The pack is the decision, held as data; nothing here evaluates a report.
"""

from marrow_triage.pack.loader import RulePack, RulePackError, default_rules_path, load_rule_pack

__all__ = ["RulePack", "RulePackError", "default_rules_path", "load_rule_pack"]
