"""A real `trailkeeper serve` process: first start prints a key and an example that works."""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.server import clean_env, serve_with_banner

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


def _trailkeeper(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trailkeeper", *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_busy_port_fails_in_one_line_before_minting_a_key(tmp_path: Path) -> None:
    """The key printed "once" used to be minted and shown before the bind failed; the next
    start then printed none."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        first = _trailkeeper(tmp_path, "serve", "--port", port)
        assert first.returncode == 1
        assert first.stderr == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
        assert not TOKEN.search(first.stdout + first.stderr)
        assert not (tmp_path / "data").exists(), "nothing was created"

        assert _trailkeeper(tmp_path, "tenants", "create", "default").returncode == 0
        again = _trailkeeper(tmp_path, "serve", "--port", port, "--print-key")
        assert again.returncode == 1
        assert not TOKEN.search(again.stdout + again.stderr)
        keys = _trailkeeper(tmp_path, "keys", "list")
        assert keys.returncode == 0
        assert keys.stdout.count("\n") == 1, f"no key was minted: {keys.stdout}"

    proc, _, banner = serve_with_banner(tmp_path, "--print-key")
    try:
        assert TOKEN.search(banner), banner
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def test_print_key_when_tenants_were_made_before_the_first_serve(tmp_path: Path) -> None:
    """`tenants create acme` first meant no bootstrap, and --print-key then failed with
    "no tenant 'default'": it now makes tenant default for its key."""
    made = _trailkeeper(tmp_path, "tenants", "create", "acme")
    assert made.returncode == 0, made.stderr
    assert f"created a new database at {tmp_path / 'data' / 'trailkeeper.db'}" in made.stderr
    proc, base, banner = serve_with_banner(tmp_path, "--print-key")
    try:
        token = TOKEN.search(banner)
        assert token, banner
        response = httpx.get(
            f"{base}/v1/events", headers={"Authorization": f"Bearer {token.group(0)}"}
        )
        assert response.status_code == 200
        # The admin key printed beside it manages tenants, and reads no tenant's events.
        _, admin_token = dict.fromkeys(TOKEN.findall(banner))  # each also in a curl line
        admin = {"Authorization": f"Bearer {admin_token}"}
        assert httpx.get(f"{base}/v1/tenants", headers=admin).status_code == 200
        assert httpx.get(f"{base}/v1/export", headers=admin).status_code == 200  # _system's
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    tenants = _trailkeeper(tmp_path, "tenants", "list").stdout
    # `_system`: the operator log, which recorded both creations and the keys.
    assert [line.split("\t")[0] for line in tenants.splitlines()[1:]] == [
        "_system",
        "acme",
        "default",
    ]
