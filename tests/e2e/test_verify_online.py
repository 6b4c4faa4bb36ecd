"""`trailkeeper verify --online` against a real server process, as a customer would run it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.server import clean_env, serve_with_banner
from tests.factories import event_payload


def test_verify_online_with_held_checkpoint(tmp_path: Path) -> None:
    env = clean_env()
    server, base, text = serve_with_banner(tmp_path)
    try:
        token = re.search(r"tk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", text)
        assert token, text
        headers = {"Authorization": f"Bearer {token.group(0)}"}
        events = [event_payload(n) for n in range(25)]
        assert (
            httpx.post(
                f"{base}/v1/events/batch", json={"events": events}, headers=headers
            ).status_code
            == 201
        )
        vkey = httpx.get(f"{base}/v1/ledger/public-key").json()["vkey"]
        (tmp_path / "key.txt").write_text(vkey)

        def verify(*extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "trailkeeper",
                    "verify",
                    "--online",
                    base,
                    "--key",
                    f"@{tmp_path / 'key.txt'}",
                    *extra,
                ],
                env={**env, "TRAILKEEPER_API_KEY": token.group(0)},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        first = verify("--save-checkpoint", str(tmp_path / "held.txt"), "--event", "evt-00003")
        assert first.returncode == 0, first.stderr
        assert "verified: 25 events match" in first.stdout
        assert "evt-00003 is included" in first.stderr

        more = [event_payload(n) for n in range(25, 31)]
        httpx.post(f"{base}/v1/events/batch", json={"events": more}, headers=headers)
        time.sleep(0.01)
        second = verify("--checkpoint", str(tmp_path / "held.txt"))
        assert second.returncode == 0, second.stderr
        assert "consistent with the held checkpoint of size 25" in second.stderr
        assert "verified: 31 events match" in second.stdout

        wrong_key = verify("--checkpoint", str(tmp_path / "held.txt"), "--api-key", "tk_nope")
        assert wrong_key.returncode == 1
        assert "401" in wrong_key.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)


# Every separator str.splitlines knows besides \n (and \r\n): httpx's iter_lines split on them.
SEPARATORS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\r"]


def test_verify_online_with_unicode_line_separators_in_events(tmp_path: Path) -> None:
    """An intact log whose events hold these characters was reported as tampered: the
    streamed export was cut into lines on them, not on \\n alone."""
    server, base, text = serve_with_banner(tmp_path)
    try:
        token = re.search(r"tk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", text)
        assert token, text
        headers = {"Authorization": f"Bearer {token.group(0)}"}
        events = [
            event_payload(
                n,
                actor={"id": f"user-{n}", "name": f"A{sep}B"},
                metadata={"text": f"one{sep}two", f"key{sep}": sep},
            )
            for n, sep in enumerate(SEPARATORS)
        ]
        posted = httpx.post(f"{base}/v1/events/batch", json={"events": events}, headers=headers)
        assert posted.status_code == 201, posted.text
        vkey = httpx.get(f"{base}/v1/ledger/public-key").json()["vkey"]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "trailkeeper",
                "verify",
                "--online",
                base,
                "--key",
                vkey,
                *[arg for n in range(len(SEPARATORS)) for arg in ("--event", f"evt-{n:05d}")],
            ],
            env={**clean_env(), "TRAILKEEPER_API_KEY": token.group(0)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert f"verified: {len(SEPARATORS)} events match" in result.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)
