"""Recording through the client against a real `trailkeeper serve`: batching, retries,
refusals and the buffer policy."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import deque
from pathlib import Path

import httpx
import pytest

from conftest import Server
from trailkeeper_client import ApiError, Client, DeliveryError, RetryPolicy, uuid7

FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.2)


class Flaky(httpx.BaseTransport):
    """Fails the first POSTs as scripted, then forwards to the real server.

    Steps: a status code (answered without forwarding), `refused` (a connection error before
    the server saw anything) or `lost` (forwarded and stored, but the answer never arrives).
    """

    def __init__(self, *script: str) -> None:
        self.inner = httpx.HTTPTransport()
        self.script = deque(script)
        self.posts: list[tuple[float, int]] = []  # (monotonic time, status or 0)
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST":
            return self.inner.handle_request(request)
        with self.lock:
            step = self.script.popleft() if self.script else "forward"
        if step == "refused":
            self.posts.append((time.monotonic(), 0))
            raise httpx.ConnectError("connection refused", request=request)
        if step in ("forward", "lost"):
            response = self.inner.handle_request(request)
            self.posts.append((time.monotonic(), response.status_code))
            if step == "forward":
                return response
            response.read()
            response.close()
            raise httpx.ReadError("connection reset by peer", request=request)
        status = int(step)
        self.posts.append((time.monotonic(), status))
        headers = {"Retry-After": "1"} if status == 429 else {}
        body = {"error": {"code": "unavailable", "message": "busy", "status": status}}
        return httpx.Response(status, headers=headers, json=body)

    def close(self) -> None:
        self.inner.close()


def stored(server: Server, api_key: str) -> list[dict[str, object]]:
    with Client(server.url, api_key) as reader:
        return list(reader.export())


def test_uuid7_is_version_7_and_ordered() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert all(uuid.UUID(i).version == 7 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_record_returns_at_once_and_flush_delivers(server: Server, api_key: str) -> None:
    with Client(server.url, api_key, source="billing", flush_interval=60) as audit:
        first = audit.record("invoice.paid", actor={"id": "u-1"}, target={"id": "in_1"})
        ids = audit.record_many(
            [
                {"action": "invoice.sent", "actor": {"id": "u-2"}, "metadata": {"n": n}}
                for n in range(3)
            ]
        )
        assert audit.stats.delivered == 0  # nothing sent yet: the interval is a minute
        assert audit.flush(timeout=30)
        assert audit.stats.delivered == 4
        event = audit.get(first)
        assert event["action"] == "invoice.paid"
        assert event["source"] == "billing"
        assert event["target"] == {"id": "in_1", "type": None, "name": None, "email": None} or (
            event["target"] and event["target"]["id"] == "in_1"
        )
        assert [e["id"] for e in audit.export()] == [first, *ids]
        assert {e["id"] for e in audit.list(page_size=2)} == {first, *ids}
        assert [e["id"] for e in audit.list(action="invoice.sent", page_size=1)] == ids[::-1]
        assert audit.export_csv().__next__().startswith("id,")
        with pytest.raises(ApiError) as missing:
            audit.get("no-such-event")
        assert missing.value.status == 404


def test_close_delivers_what_is_queued(server: Server, api_key: str) -> None:
    audit = Client(server.url, api_key, flush_interval=60)
    ids = [audit.record("x", actor={"id": "u"}) for _ in range(1203)]
    audit.close()
    assert audit.stats.delivered == 1203
    assert sorted(e["id"] for e in stored(server, api_key)) == sorted(ids)
    with pytest.raises(RuntimeError):
        audit.record("late", actor={"id": "u"})


def test_interpreter_exit_delivers_what_is_queued(
    server: Server, api_key: str, tmp_path: Path
) -> None:
    script = textwrap.dedent(
        f"""
        from trailkeeper_client import Client
        audit = Client({server.url!r}, {api_key!r}, flush_interval=60)
        for n in range(7):
            audit.record("exit.test", actor={{"id": "u"}}, metadata={{"n": n}})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert [e["metadata"] for e in stored(server, api_key)] == [{"n": n} for n in range(7)]


def test_5xx_429_and_lost_answers_are_retried_once_stored(server: Server, api_key: str) -> None:
    """503, 429 (with Retry-After: 1), a refused connection, and a batch the server stored
    whose answer was lost: all retried, every event stored exactly once, nothing reported.
    One sender, so that the script's steps meet the batches in order."""
    flaky = Flaky("503", "429", "refused", "lost", "502", "lost")
    errors: list[DeliveryError] = []
    with Client(
        server.url,
        api_key,
        transport=flaky,
        retry=FAST_RETRY,
        batch_size=50,
        senders=1,
        on_error=errors.append,
    ) as audit:
        ids = [audit.record("retry.test", actor={"id": f"u{n}"}) for n in range(400)]
        assert audit.flush(timeout=60)
        assert audit.stats.delivered == 400
    assert errors == []
    assert sorted(e["id"] for e in stored(server, api_key)) == sorted(ids)
    statuses = [status for _, status in flaky.posts]
    # the stored-but-unanswered batch is sent twice more and answered 200 (already stored)
    assert statuses[:7] == [503, 429, 0, 201, 502, 200, 200]
    after_429 = flaky.posts[2][0] - flaky.posts[1][0]
    assert after_429 >= 1.0  # Retry-After honoured


def test_4xx_other_than_429_is_never_retried(server: Server) -> None:
    errors: list[DeliveryError] = []
    flaky = Flaky()
    with Client(server.url, "tk_wrong", transport=flaky, on_error=errors.append) as audit:
        audit.record_many([{"action": "a", "actor": {"id": "u"}} for _ in range(10)])
        assert audit.flush(timeout=30)
    assert [status for _, status in flaky.posts] == [401]
    assert len(errors) == 1
    assert errors[0].reason == "rejected"
    assert errors[0].error is not None
    assert errors[0].error.status == 401
    assert len(errors[0].events) == 10


def test_a_400_reports_the_bad_events_and_stores_the_rest(server: Server, api_key: str) -> None:
    errors: list[DeliveryError] = []
    with Client(server.url, api_key, on_error=errors.append, flush_interval=60) as audit:
        good = [audit.record("ok", actor={"id": f"u{n}"}) for n in range(3)]
        bad = audit.record("bad", actor={"id": "u", "email": "not-an-email"})
        good += [audit.record("ok", actor={"id": f"v{n}"}) for n in range(3)]
        worse = audit.record("bad", actor={"id": "u"}, context={"ip": "300.1.2.3"})
        good.append(audit.record("ok", actor={"id": "w"}))
        assert audit.flush(timeout=30)
        assert audit.stats.rejected == 2
    assert [e.events[0]["id"] for e in errors] == [bad, worse]
    assert all(e.reason == "rejected" and len(e.events) == 1 for e in errors)
    assert errors[0].error is not None
    assert errors[0].error.status == 400
    assert "email" in errors[0].error.message
    assert sorted(e["id"] for e in stored(server, api_key)) == sorted(good)


def test_a_409_conflict_is_narrowed_down_to_its_event(server: Server, api_key: str) -> None:
    errors: list[DeliveryError] = []
    with Client(server.url, api_key, on_error=errors.append) as audit:
        audit.record("first", actor={"id": "u"}, id="taken")
        assert audit.flush(timeout=30)
        ids = [audit.record("ok", actor={"id": f"u{n}"}) for n in range(9)]
        audit.record("other content", actor={"id": "u"}, id="taken")
        ids += [audit.record("ok", actor={"id": f"v{n}"}) for n in range(6)]
        assert audit.flush(timeout=30)
    assert len(errors) == 1
    assert errors[0].error is not None
    assert errors[0].error.status == 409
    assert errors[0].events[0]["action"] == "other content"
    assert sorted(e["id"] for e in stored(server, api_key)) == sorted([*ids, "taken"])


def test_an_unencodable_event_is_reported_alone(server: Server, api_key: str) -> None:
    errors: list[DeliveryError] = []
    with Client(server.url, api_key, on_error=errors.append) as audit:
        ok = audit.record("ok", actor={"id": "u"})
        audit.record("bad", actor={"id": "u"}, metadata={"when": object()})
        assert audit.flush(timeout=30)
    assert [e.error.code for e in errors if e.error] == ["unencodable"]
    assert [e["id"] for e in stored(server, api_key)] == [ok]


def test_an_event_without_actor_is_refused_on_the_callers_thread(
    server: Server, api_key: str
) -> None:
    with Client(server.url, api_key) as audit, pytest.raises(ValueError, match="actor"):
        audit.record("orphan")


def test_drop_oldest_when_the_server_is_away(tmp_path: Path) -> None:
    """Nothing listens: the buffer fills, the oldest events go to the callback as dropped, and
    close() gives up on the rest within its timeout, reporting them as undelivered."""
    errors: list[DeliveryError] = []
    audit = Client(
        f"http://127.0.0.1:{Server('', tmp_path).port}",
        "tk_x",
        batch_size=10,
        max_buffer=20,
        overflow="drop_oldest",
        on_error=errors.append,
        retry=FAST_RETRY,
        flush_interval=0.01,
    )
    ids = [audit.record("x", actor={"id": "u"}) for _ in range(100)]
    audit.close(timeout=0.5)
    reported = [(e.reason, event["id"]) for e in errors for event in e.events]
    assert sorted(i for _, i in reported) == sorted(ids)  # every event accounted for, once
    assert {reason for reason, _ in reported} == {"dropped", "undelivered"}
    assert audit.stats.dropped + audit.stats.undelivered == 100


@pytest.mark.parametrize("engine_url", ["sqlite"], indirect=True)
def test_block_waits_for_room_then_delivers(server: Server, api_key: str) -> None:
    """With `overflow="block"` a full buffer makes record() wait, and nothing is lost."""
    flaky = Flaky("503", "503", "503")
    with Client(
        server.url,
        api_key,
        transport=flaky,
        batch_size=10,
        max_buffer=10,
        retry=FAST_RETRY,
        flush_interval=0.01,
    ) as audit:
        ids = [audit.record("x", actor={"id": "u"}) for _ in range(200)]
        assert audit.flush(timeout=30)
    assert sorted(e["id"] for e in stored(server, api_key)) == sorted(ids)


def test_reads_retry_and_raise_api_errors(server: Server, api_key: str) -> None:
    with Client(server.url, api_key) as audit:
        with pytest.raises(ApiError) as bad:
            audit.page(limit=1000)
        assert bad.value.status == 400
        assert bad.value.code == "invalid_request"
        with pytest.raises(ValueError, match="timezone"):
            audit.page(since=__import__("datetime").datetime(2024, 1, 1))


def test_the_client_imports_nothing_of_the_server() -> None:
    code = (
        "import sys, trailkeeper_client, trailkeeper_client.asgi\n"
        "bad = {'trailkeeper', 'litestar', 'psycopg', 'msgspec', 'uuid_utils'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in bad))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    assert found.stdout.strip() == "[]"
