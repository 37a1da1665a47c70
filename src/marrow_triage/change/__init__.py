"""Safe change of a rule pack: what a change does to every kind of patient before it ships.

* :mod:`~marrow_triage.change.space`: the report space (boundary classes of every field for
  the thresholds of the packs compared, combined pairwise, plus a seeded sample);
* :mod:`~marrow_triage.change.impact`: two engines over the same reports, and what moved;
* :mod:`~marrow_triage.change.render`: the impact as text, Markdown or JSON.

Nothing here is imported by the engine; the CLI's ``marrow-triage rules diff`` uses it.
"""

from marrow_triage.change.impact import Batch, Impact, compare_engines, report_batches
from marrow_triage.change.render import impact_json, impact_markdown, impact_text

__all__ = ["Batch", "Impact", "compare_engines", "impact_json", "impact_markdown",
           "impact_text", "report_batches"]
