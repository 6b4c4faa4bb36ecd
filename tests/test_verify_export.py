"""`verifier.verify_export` reads files a customer got from anywhere: whatever the lines hold,
it answers with a report and never raises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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


def _signed_export(tmp_path: Path, count: int) -> tuple[list[bytes], verifier.Checkpoint]:
    from bench.verify_export import write_export

    from trailkeeper.ledger import Signer

    signer = Signer("audit.example.com", b"\x01" * 32)
    path = tmp_path / "export.jsonl"
    note = write_export(path, count, signer, chunk=700)
    return path.read_bytes().splitlines(), verifier.parse_checkpoint(note, signer.vkey)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_tampered_line_is_found_in_chunks_and_processes(tmp_path: Path, workers: int) -> None:
    """Lines are hashed in chunks (in worker processes with `workers` > 1): the export still
    verifies in any order, and an altered event is named by its log index and id."""
    lines, checkpoint = _signed_export(tmp_path, 2 * verifier.CHUNK_LINES + 345)
    assert verifier.verify_export(lines, checkpoint, workers).ok
    assert verifier.verify_export(lines[::-1], checkpoint, workers).ok
    altered = lines[1500].replace(b'"action":"', b'"action":"forged ')
    report = verifier.verify_export([*lines[:1500], altered, *lines[1501:]], checkpoint, workers)
    assert not report.ok
    assert (report.first_bad_index, report.first_bad_id) == (1500, "bench-00001500")
    assert "altered" in report.message
    report = verifier.verify_export(lines[:1200] + lines[1201:], checkpoint, workers)
    assert (report.ok, report.first_bad_index) == (False, 1200)
    report = verifier.verify_export([*lines, lines[2000]], checkpoint, workers)
    assert report.message == "log index 2000 appears twice"
    report = verifier.verify_export([*lines[:2100], b"{", *lines[2100:]], checkpoint, workers)
    assert report.message == "line 2101 is not an exported event"
