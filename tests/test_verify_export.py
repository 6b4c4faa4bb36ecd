"""`verifier.verify_export` reads files a customer got from anywhere: whatever the lines hold,
it answers with a report and never raises."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailkeeper import verifier

CHECKPOINT = verifier.Checkpoint("audit.example.com/acme", 3, b"\0" * 32, (), "")

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
_events = st.fixed_dictionaries(
    {"log_index": st.integers(-1, 4) | st.booleans() | st.text(max_size=2)},
    optional={name: _json for name in ("leaf_hash", "target", "context", "id", "metadata")},
)
_lines = (
    _events.map(json.dumps)  # json.dumps writes NaN and Infinity, as a hostile file may
    | _json.map(json.dumps)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_lines, max_size=5))
def test_any_lines_get_a_report(lines: list[str | bytes]) -> None:
    report = verifier.verify_export(lines, CHECKPOINT)
    assert isinstance(report.ok, bool)
    assert report.message


def test_content_no_server_could_have_hashed_is_named_by_line() -> None:
    lines = ['{"log_index": 0, "id": "a", "action": "x"}', '{"log_index": 1, "id": "b", "x": NaN}']
    report = verifier.verify_export(lines, CHECKPOINT)
    assert not report.ok
    assert report.message.startswith("line 2: NaN")
    assert (report.first_bad_index, report.first_bad_id) == (1, "b")


def test_a_boolean_is_not_a_log_index() -> None:
    report = verifier.verify_export(['{"log_index": true}'], CHECKPOINT)
    assert report.message == "line 1 has no valid log_index"
