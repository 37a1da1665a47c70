"""The episode's history state gives exactly the facts and evidence of reading every
earlier check-in (``derive``), for any sequence of check-ins; its stored form round-trips.

The stores' side (which path a record takes, rebuilding after an out-of-order check-in,
the state erased with the episode) is in tests/test_store_contract.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from history_strategies import episodes
from marrow_triage import RulePack
from marrow_triage.pack.spec import HistorySettings
from marrow_triage.timeline import derive
from marrow_triage.timeline.history import HistoryState, state_key


def history_settings(pack: RulePack) -> HistorySettings:
    assert pack.history is not None
    return pack.history


@settings(max_examples=400)
@given(data=st.data())
def test_the_state_gives_what_reading_every_checkin_gives(pack: RulePack,
                                                         data: st.DataObject) -> None:
    history = history_settings(pack)
    episode = data.draw(episodes(history))
    state = HistoryState()
    for n, checkin in enumerate(episode):
        earlier = episode[:n]
        expected = derive(earlier, checkin.report, checkin.at, history)
        assert state.history(checkin.report, checkin.at, history) == expected
        # What the store keeps is the text: read back, it gives the same again.
        stored = HistoryState.loads(state.dumps())
        assert stored == state
        assert stored.history(checkin.report, checkin.at, history) == expected
        state.add(checkin.at, checkin.report, history)
    assert state == HistoryState.of(episode, history)


def test_the_key_follows_the_history_settings(pack: RulePack) -> None:
    history = history_settings(pack)
    same = history.model_copy()
    assert state_key(same) == state_key(history)
    for change in ({"raised_temperature_c": history.raised_temperature_c - 0.5},
                   {"raised_run_max_gap_hours": history.raised_run_max_gap_hours + 1}):
        assert state_key(history.model_copy(update=change)) != state_key(history)
    # The time-bound settings do not change a fact: a pack moving them keeps the states.
    assert state_key(history.model_copy(
        update={"checkin_max_days_from_episode": 7})) == state_key(history)


@pytest.mark.parametrize("text", [
    "", "[]", "{}", '{"n": "1"}', "not json",
    '{"n":1,"last":0,"high":[0,"38","C"],"bleed":null,"run":[],"pain":[],"risk":null}',
    '{"n":1,"last":0,"high":null,"bleed":[0,"gushing"],"run":[],"pain":[],"risk":null}',
    '{"n":1,"last":0,"high":[0,99.0,"C"],"bleed":null,"run":[],"pain":[],"risk":null}',
])
def test_a_damaged_state_is_refused_not_read(text: str) -> None:
    with pytest.raises(ValueError, match="not a stored history state"):
        HistoryState.loads(text)
