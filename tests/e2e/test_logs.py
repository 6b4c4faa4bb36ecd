"""Logs of a real `serve`: one JSON object per line, one access line per request carrying the
request id that the response returns, the tenant and key id, never the key; and multi-process
metrics files read back through /metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import start_serve
from tests.e2e.test_hostile_http import TOKEN
from tests.helpers import secret_of

METRICS_TOKEN = "e2e-metrics-token-0123456789"


def run_requests(tmp_path: Path, **settings: str) -> tuple[str, list[str], str]:
    """Start serve, make a few requests, stop it: (key, log lines after start, metrics text)."""
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        proc, url = start_serve(tmp_path, output=sink, metrics_token=METRICS_TOKEN, **settings)
    try:
        key = TOKEN.search(log.read_text())
        assert key
        auth = {"Authorization": f"Bearer {key.group(0)}"}
        event = {"action": "user.login", "actor": {"id": "u1"}}
        posted = httpx.post(
            f"{url}/v1/events", json=event, headers={**auth, "X-Request-ID": "e2e-req-1"}
        )
        assert posted.headers["x-request-id"] == "e2e-req-1"
        listed = httpx.get(f"{url}/v1/events", headers=auth)
        generated = listed.headers["x-request-id"]
        httpx.get(f"{url}/v1/events", headers={"Authorization": f"Bearer {key.group(0)[:-2]}xx"})
        metrics = httpx.get(
            f"{url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        ).text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    _, _, after_start = log.read_text().partition("Application startup complete")
    lines = after_start.splitlines()[1:]
    return key.group(0), [*lines, generated], metrics


def test_json_access_lines_carry_the_request_id(tmp_path: Path) -> None:
    key, lines, _ = run_requests(tmp_path)
    *lines, generated = lines
    records = [json.loads(line) for line in lines]  # every line is JSON
    access = [
        r for r in records if r["logger"] == "trailkeeper.access" and r["route"] != "/healthz"
    ]
    assert [(r["method"], r["route"], r["status"]) for r in access] == [
        ("POST", "/v1/events", 201),
        ("GET", "/v1/events", 200),
        ("GET", "/v1/events", 401),
    ]
    posted, listed, refused = access
    assert posted["request_id"] == "e2e-req-1"
    assert listed["request_id"] == generated
    assert posted["tenant"] == listed["tenant"] == "default"
    assert posted["key_id"] == key.split("_")[1]
    assert refused["tenant"] is None
    assert all(isinstance(r["duration_ms"], float) for r in access)
    text = "\n".join(lines)
    assert secret_of(key) not in text
    assert secret_of(key)[:-2] not in text
    assert METRICS_TOKEN not in text


def test_text_format_for_development(tmp_path: Path) -> None:
    _, lines, _ = run_requests(tmp_path, log_format="text")
    access = [line for line in lines if "trailkeeper.access" in line and "/healthz" not in line]
    assert len(access) == 3
    assert "POST /v1/events 201" in access[0]
    assert "request_id=e2e-req-1 tenant=default" in access[0]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def test_multiprocess_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With PROMETHEUS_MULTIPROC_DIR the values live in files there, /metrics reads them all,
    and they outlive the process (counters of a restarted worker are not lost)."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    _, _, metrics = run_requests(tmp_path)
    assert list(directory.glob("counter_*.db")), "values are kept in files"
    found = samples(metrics)
    route = frozenset({("method", "POST"), ("route", "/v1/events"), ("status", "201")})
    assert found[("trailkeeper_http_requests_total", route)] == 1
    assert found[("trailkeeper_events_ingested_total", frozenset({("tenant", "default")}))] == 1
    again = subprocess.run(
        [sys.executable, "-c", _READ_DIR],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)},
    )
    assert samples(again.stdout)[("trailkeeper_http_requests_total", route)] == 1


_READ_DIR = """
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
registry = CollectorRegistry()
multiprocess.MultiProcessCollector(registry)
print(generate_latest(registry).decode())
"""
