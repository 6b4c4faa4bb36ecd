"""`trailkeeper verify` of a large export: an export file and its checkpoint written directly
with the library (as the server would hash and export them), then verified offline in a
subprocess, next to a baseline measured in the same run: SHA-256 of every line of the file."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec

from trailkeeper.formats import event_document
from trailkeeper.ledger import Frontier, Signer, event_leaves
from trailkeeper.model import Actor, Context, Event, Target

START = datetime(2025, 1, 1, tzinfo=UTC)
ORIGIN = "bench.example.com/acme"


def bench_event(n: int) -> Event:
    """An event like bench.data's, with a float `amount` in its metadata (a third of them whole
    numbers, which the leaf writes as integers)."""
    target_type = ("buyer", "transaction", "payment-method", "user")[n % 4]
    return Event(
        id=f"bench-{n:08d}",
        tenant="acme",
        occurred_at=START + timedelta(seconds=3 * n),
        received_at=START + timedelta(seconds=3 * n, milliseconds=250),
        action=("created", "updated", "deleted", "captured")[n % 4],
        type="transaction:captured",
        actor=Actor(id=f"user-{n % 200}", name="Jane Doe", email="jane@example.com", staff=False),
        target=Target(type=target_type, id=f"{target_type}-{n % 50_000}", name="Samuel J"),
        source="api",
        context=Context(ip="203.0.113.7", user_agent="Mozilla/5.0 (X11; Linux x86_64)"),
        metadata={
            "plan": "pro",
            "ticket": f"OPS-{n % 9999}",
            "tags": ["a", "b"],
            "note": "changed from the admin dashboard by a teammate",
            "amount": 12.5 + n % 1000 + 0.25 * (n % 3),
        },
    )


def write_export(path: Path, count: int, signer: Signer, chunk: int = 10_000) -> str:
    """Write `count` events as `trailkeeper export` does (JSON lines, log order); returns the
    checkpoint note signed over them."""
    frontier = Frontier(0, {})
    encode = msgspec.json.Encoder().encode
    with path.open("wb") as out:
        for first in range(0, count, chunk):
            events = [bench_event(n) for n in range(first, min(count, first + chunk))]
            leaves = event_leaves(events, first)
            frontier.extend(leaves, min_level=64)  # keep no nodes: only the root is needed
            out.writelines(
                encode(event_document(msgspec.structs.replace(e, log_index=i, leaf_hash=leaf)))
                + b"\n"
                for i, (e, leaf) in enumerate(zip(events, leaves, strict=True), first)
            )
    return signer.sign_checkpoint(ORIGIN, count, frontier.root(), datetime.now(UTC))


def sha256_lines(path: Path) -> float:
    """The baseline: seconds to read the file and SHA-256 each line."""
    start = time.perf_counter()
    with path.open("rb") as lines:
        for line in lines:
            hashlib.sha256(line).digest()
    return time.perf_counter() - start


# Run in a fresh interpreter, so that its peak RSS is the verification's alone.
_VERIFY = """
import json, resource, sys, time
from trailkeeper import verifier
export, note, vkey, workers = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3], int(sys.argv[4])
start = time.perf_counter()
with open(export, "rb") as lines:
    report = verifier.verify_export(lines, verifier.parse_checkpoint(note, vkey), workers)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps([report.ok, report.message, seconds, peak, worker]))
"""


def verify_in_subprocess(
    export: Path, note: Path, vkey: str, workers: int
) -> tuple[bool, str, float, float, float]:
    """(ok, message, seconds, peak RSS MB of the verifying process, of its largest worker)."""
    result = subprocess.run(
        [sys.executable, "-c", _VERIFY, str(export), str(note), vkey, str(workers)],
        capture_output=True,
        text=True,
        check=True,
    )
    ok, message, seconds, peak, worker = json.loads(result.stdout)
    return bool(ok), str(message), float(seconds), float(peak), float(worker)


def measure(tmp: Path, count: int, workers: int) -> str:
    """One line for the bench report."""
    signer = Signer("bench.example.com", b"\x07" * 32)
    export, note = tmp / "verify-export.jsonl", tmp / "verify-checkpoint.txt"
    start = time.perf_counter()
    note.write_text(write_export(export, count, signer))
    written = time.perf_counter() - start
    baseline = sha256_lines(export)
    ok, message, seconds, peak, worker = verify_in_subprocess(export, note, signer.vkey, workers)
    baseline = min(baseline, sha256_lines(export))  # in turns: before and after
    assert ok, message
    export.unlink()
    in_time = seconds * 1_000_000 / count < 15
    return (
        f"verify --export ({workers} processes) {count / seconds:>10,.0f} events/s "
        f"({seconds:.1f} s; 1M in < 15 s: {'met' if in_time else 'MISSED'}), "
        f"{seconds / baseline:.1f}x SHA-256 of the lines ({baseline:.2f} s), "
        f"peak RSS {peak:.0f} MB + {worker:.0f} MB a worker (< 100 MB: "
        f"{'met' if peak < 100 else 'MISSED'}); export written in {written:.0f} s"
    )


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp_dir:
        count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
        workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
        print(measure(Path(tmp_dir), count, workers))
