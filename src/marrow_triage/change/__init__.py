"""Safe change of a rule pack: what a change does to every kind of patient before it ships.

* :mod:`~marrow_triage.change.space`: the report space (boundary classes of every field for
  the thresholds of the packs compared, combined pairwise, plus a seeded sample);
* :mod:`~marrow_triage.change.episodes`: episodes of check-ins at every history cut-off,
  which a change of the timeline rules is judged over;
* :mod:`~marrow_triage.change.impact`: two engines over the same reports (and two
  timelines over the same episodes), and what moved;
* :mod:`~marrow_triage.change.render`: the impact as text, Markdown or JSON.

Nothing here is imported by the engine; the CLI's ``marrow-triage rules diff`` uses it.
"""

from marrow_triage.change.impact import (
    Batch,
    Impact,
    compare_engines,
    compare_timelines,
    episode_batches,
    report_batches,
    timeline_differs,
)
from marrow_triage.change.render import impact_json, impact_markdown, impact_text

__all__ = ["Batch", "Impact", "compare_engines", "compare_timelines", "episode_batches",
           "impact_json", "impact_markdown", "impact_text", "report_batches",
           "timeline_differs"]
