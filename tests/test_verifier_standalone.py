"""verifier.py works as a lone file copied into someone else's project."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from trailkeeper import verifier

VECTORS = Path(__file__).parent / "vectors"


def test_copied_verifier_runs_without_trailkeeper(tmp_path: Path) -> None:
    shutil.copy(verifier.__file__, tmp_path / "vendored_verifier.py")
    vector = json.loads((VECTORS / "checkpoint.json").read_text())
    script = f"""
import sys
sys.modules["trailkeeper"] = None  # any import of trailkeeper would now fail
import vendored_verifier as v
cp = v.parse_checkpoint({vector["note"]!r}, {vector["vkey"]!r})
print(cp.origin, cp.size)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["audit.example.com/acme", "8"]
