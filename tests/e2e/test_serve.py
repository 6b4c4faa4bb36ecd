"""A real `trailkeeper serve` process: first start prints a key and an example that works."""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import httpx

from tests.e2e.server import serve_with_banner

TOKEN = re.compile(r"tk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")


def test_first_start_prints_a_working_key_and_example(tmp_path: Path) -> None:
    proc, base, banner = serve_with_banner(tmp_path)
    try:
        token = TOKEN.search(banner)
        assert token, banner
        examples = [
            line.strip() for line in banner.splitlines() if line.strip().startswith("curl ")
        ]
        assert len(examples) == 2
        if shutil.which("curl"):
            posted = subprocess.run(
                shlex.split(examples[0]), capture_output=True, text=True, check=True, timeout=30
            ).stdout
            listed = subprocess.run(
                shlex.split(examples[1]), capture_output=True, text=True, check=True, timeout=30
            ).stdout
        else:  # the same requests without curl
            headers = {"Authorization": f"Bearer {token.group(0)}"}
            posted = httpx.post(
                f"{base}/v1/events",
                headers=headers,
                json={"action": "user.login", "actor": {"id": "user-1"}, "source": "cli"},
            ).text
            listed = httpx.get(f"{base}/v1/events", headers=headers).text
        assert '"action":"user.login"' in posted
        assert '"user-1"' in listed
        assert '"items"' in listed
        assert (tmp_path / "data" / "trailkeeper.db").exists(), "SQLite under ./data by default"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    assert proc.returncode in (0, -signal.SIGTERM), "clean shutdown on SIGTERM"

    # Second start: no key unless asked for with --print-key (what `make run` does).
    second, base, banner = serve_with_banner(tmp_path, "--print-key")
    try:
        fresh = TOKEN.search(banner)
        assert fresh
        assert fresh.group(0) != token.group(0)
        response = httpx.get(
            f"{base}/v1/events", headers={"Authorization": f"Bearer {fresh.group(0)}"}
        )
        assert response.status_code == 200
        assert response.json()["items"][0]["actor"]["id"] == "user-1", "data survived restart"
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=15)
