"""Timestamps anywhere in RFC 3339's range, in any offset: a 2xx or a 400, never a 500.

`0001-01-01T00:00:00+00:01` is a valid RFC 3339 time whose UTC instant is before year 1, which
Python's datetime cannot hold: moving it to UTC raised OverflowError, a 500 on the API and a
traceback from `trailkeeper import`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from tests.api.helpers import assert_error
from trailkeeper.cli import main

Headers = Callable[..., dict[str, str]]
EXTREMES = [
    "0001-01-01T00:00:00+00:01",
    "0001-01-01T00:00:00+23:59",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00-23:59",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59.999999-23:59",
    "9999-12-31T23:59:59.9999994Z",
    "9999-12-31T23:59:59+23:59",
]


@st.composite
def rfc3339(draw: st.DrawFn) -> str:
    """Any RFC 3339 time msgspec reads: the whole year range, offsets to +-23:59, 0-9
    fraction digits, weighted towards both ends of the range."""
    when = draw(
        st.one_of(
            st.datetimes(),
            st.datetimes(max_value=datetime(1, 1, 3)),
            st.datetimes(min_value=datetime(9999, 12, 29)),
        )
    )
    text = when.isoformat(timespec="seconds")
    digits = draw(st.integers(min_value=0, max_value=9))
    if digits:
        text += "." + (f"{when.microsecond:06d}" + "999")[:digits]
    minutes = draw(st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59))
    if minutes == 0:
        return text + draw(st.sampled_from(["Z", "+00:00", "-00:00"]))
    sign = "+" if minutes > 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{text}{sign}{hours:02d}:{mins:02d}"


def refused_or_ok(response: Any, ok: int) -> None:
    if response.status_code != ok:
        assert_error(response, 400)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=rfc3339(), second=rfc3339())
@example(first=EXTREMES[0], second=EXTREMES[4])
@example(first=EXTREMES[3], second=EXTREMES[5])
def test_any_rfc3339_time_is_a_2xx_or_a_400_never_a_500(
    client: TestClient[Any], key_for: Headers, first: str, second: str
) -> None:
    headers = key_for()
    for value in (first, second):
        event = {"action": "a", "actor": {"id": "u"}, "occurred_at": value}
        refused_or_ok(client.post("/v1/events", json=event, headers=headers), 201)
        batch = {"events": [{"action": "a", "actor": {"id": "u"}}, event]}
        refused_or_ok(client.post("/v1/events/batch", json=batch, headers=headers), 201)
    queries = [{"since": first}, {"until": second}, {"since": first, "until": second}]
    for query in queries:
        refused_or_ok(client.get("/v1/events", params=query, headers=headers), 200)
        for fmt in ("jsonl", "csv"):
            export = client.get("/v1/export", params={**query, "format": fmt}, headers=headers)
            refused_or_ok(export, 200)


@pytest.mark.parametrize("value", EXTREMES)
def test_extreme_times_are_400s_naming_the_field(
    client: TestClient[Any], key_for: Headers, value: str
) -> None:
    event = {"action": "a", "actor": {"id": "u"}, "occurred_at": value}
    error = assert_error(client.post("/v1/events", json=event, headers=key_for()), 400)
    assert [d["field"] for d in error["details"]] == ["occurred_at"]


@pytest.mark.parametrize("value", EXTREMES)
def test_extreme_bounds_list_and_export_on_both_engines(
    client: TestClient[Any], key_for: Headers, value: str
) -> None:
    headers = key_for()
    assert client.post("/v1/events", json={"action": "a", "actor": {"id": "u"}}, headers=headers)
    for name in ("since", "until"):
        listed = client.get("/v1/events", params={name: value}, headers=headers)
        assert listed.status_code == 200, listed.text
        exported = client.get("/v1/export", params={name: value, "format": "csv"}, headers=headers)
        assert exported.status_code == 200, exported.text
        # Every extreme is before 1970 or after tomorrow: `since` keeps none of them or all.
        keeps_all = (name == "since") == value.startswith("0001")
        assert len(listed.json()["items"]) == (1 if keeps_all else 0), (name, value)


def run_cli(database_url: str, *args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--database-url", database_url, *args], input=input)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stderr


@pytest.mark.parametrize("value", EXTREMES[:2] + EXTREMES[4:6])
def test_import_of_an_extreme_time_names_the_line(database_url: str, value: str) -> None:
    assert run_cli(database_url, "tenants", "create", "acme")[0] == 0
    lines = [{"action": "a", "actor": {"id": "u"}}, {"action": "a", "actor": {"id": "u"}}]
    lines[1]["occurred_at"] = value
    code, err = run_cli(
        database_url, "import", "--tenant", "acme", input="\n".join(map(json.dumps, lines))
    )
    assert code == 1
    assert "line 2: occurred_at must not be" in err, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("value", EXTREMES[:2] + EXTREMES[4:6])
def test_cli_export_takes_extreme_bounds(database_url: str, value: str) -> None:
    assert run_cli(database_url, "tenants", "create", "acme")[0] == 0
    for name in ("--since", "--until"):
        code, err = run_cli(database_url, "export", "--tenant", "acme", name, value)
        assert code == 0, err
