"""Starting a real `trailkeeper serve` process for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without TRAILKEEPER_* settings, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAILKEEPER_")}
    env.update({f"TRAILKEEPER_{name.upper()}": value for name, value in settings.items()})
    return env


def wait_healthy(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def start_serve(
    cwd: Path,
    *,
    database_url: str | None = None,
    output: IO[Any] | int = subprocess.DEVNULL,
    **settings: str,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `serve` on a free port and wait until it answers; returns (process, base URL)."""
    port = free_port()
    database = ["--database-url", database_url] if database_url else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "trailkeeper", *database, "serve", "--port", str(port)],
        cwd=cwd,
        env=clean_env(**settings),
        stdout=output,
        stderr=output,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
    except httpx.TransportError:
        proc.kill()
        raise
    return proc, url


def serve_with_banner(cwd: Path, *args: str) -> tuple[subprocess.Popen[str], str, str]:
    """Start `serve` reading its stderr: returns (process, base URL, the start-up banner).

    The banner is everything printed until the server reports it is ready, so a test can find
    the first-start API key and the example commands in it.
    """
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "trailkeeper", "serve", "--port", str(port), *args],
        cwd=cwd,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    banner = ""
    for line in proc.stderr:
        banner += line
        if "Application startup complete" in line:
            break
    return proc, f"http://127.0.0.1:{port}", banner
