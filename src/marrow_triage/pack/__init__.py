"""The rule pack: report facts, condition trees, the pack's schema, loading, checks, catalogue.

The pack is the decision, held as data; nothing here evaluates a report.
"""

from marrow_triage.pack.loader import default_rules_path, load_rule_pack
from marrow_triage.pack.spec import RulePack

__all__ = ["RulePack", "default_rules_path", "load_rule_pack"]
