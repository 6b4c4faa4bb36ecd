"""A real `trailkeeper serve` process: first start prints a key and an example that works."""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.server import clean_env, free_port


def test_first_start_prints_a_working_key_and_example(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "trailkeeper", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    banner: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            banner.append(line)
            if "Uvicorn running" in line or "Application startup complete" in line:
                break
        text = "".join(banner)
        token = re.search(r"tk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", text)
        assert token, text
        examples = [line.strip() for line in banner if line.strip().startswith("curl ")]
        assert len(examples) == 2
        if shutil.which("curl"):
            posted = subprocess.run(
                shlex.split(examples[0]), capture_output=True, text=True, check=True, timeout=30
            )
            listed = subprocess.run(
                shlex.split(examples[1]), capture_output=True, text=True, check=True, timeout=30
            )
            posted_body, listed_body = posted.stdout, listed.stdout
        else:  # same requests without curl
            headers = {"Authorization": f"Bearer {token.group(0)}"}
            base = f"http://127.0.0.1:{port}"
            posted_body = httpx.post(
                f"{base}/v1/events",
                headers=headers,
                json={"action": "user.login", "actor": {"id": "user-1"}, "source": "cli"},
            ).text
            listed_body = httpx.get(f"{base}/v1/events", headers=headers).text
        assert '"action":"user.login"' in posted_body
        assert '"user-1"' in listed_body
        assert '"items"' in listed_body
        assert (tmp_path / "data" / "trailkeeper.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    assert proc.returncode in (0, -signal.SIGTERM), "clean shutdown on SIGTERM"

    # Second start: no new key is printed unless asked for with --print-key.
    second = subprocess.Popen(
        [sys.executable, "-m", "trailkeeper", "serve", "--port", str(port), "--print-key"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert second.stderr is not None
        lines = []
        for line in second.stderr:
            lines.append(line)
            if "Application startup complete" in line:
                break
        fresh = re.search(r"tk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", "".join(lines))
        assert fresh
        assert fresh.group(0) != token.group(0)
        response = httpx.get(
            f"http://127.0.0.1:{port}/v1/events",
            headers={"Authorization": f"Bearer {fresh.group(0)}"},
        )
        assert response.status_code == 200
        assert response.json()["items"][0]["actor"]["id"] == "user-1", "data survived restart"
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=15)
