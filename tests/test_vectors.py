"""Fixed inputs, fixed outputs: regressions in hashing, proofs, leaves or checkpoints show here.

The vectors in tests/vectors/ were generated from the naive reference (tests/naive_merkle.py) and
the `rfc8785` package, not from the code under test; the 8-leaf root is the published
certificate-transparency test-vector root.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from trailkeeper import ledger, verifier
from trailkeeper.model import from_ms

VECTORS = Path(__file__).parent / "vectors"


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


def b64(values: list[str]) -> list[bytes]:
    return [base64.b64decode(v) for v in values]


MERKLE = load("merkle.json")
LEAVES = [verifier.leaf_hash(bytes.fromhex(h)) for h in MERKLE["leaf_inputs_hex"]]
NODES = {(0, i): h for i, h in enumerate(LEAVES)}


def perfect(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    return {(lv, ix): h for lv, ix, h in ledger.Frontier(0, {}).extend(leaves)}


def test_known_ct_root() -> None:
    assert verifier.root_hash(LEAVES).hex() == (
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    )
    assert b64(MERKLE["leaf_hashes"]) == LEAVES


@pytest.mark.parametrize("size", range(9))
def test_roots(size: int) -> None:
    expected = base64.b64decode(MERKLE["roots"][str(size)])
    assert verifier.root_hash(LEAVES[:size]) == expected
    assert ledger.hash_ranges([(0, size)], perfect(LEAVES)) == [expected]


@pytest.mark.parametrize("case", MERKLE["inclusion"], ids=lambda c: f"{c['index']}@{c['size']}")
def test_inclusion_vectors(case: dict[str, Any]) -> None:
    index, size = case["index"], case["size"]
    expected = b64(case["proof"])
    got = ledger.hash_ranges(ledger.inclusion_ranges(index, size), perfect(LEAVES[:size]))
    assert got == expected
    root = base64.b64decode(MERKLE["roots"][str(size)])
    verifier.verify_inclusion(index, size, LEAVES[index], expected, root)


@pytest.mark.parametrize("case", MERKLE["consistency"], ids=lambda c: f"{c['from']}-{c['to']}")
def test_consistency_vectors(case: dict[str, Any]) -> None:
    m, n = case["from"], case["to"]
    expected = b64(case["proof"])
    assert ledger.hash_ranges(ledger.consistency_ranges(m, n), perfect(LEAVES[:n])) == expected
    roots = MERKLE["roots"]
    verifier.verify_consistency(
        m, n, base64.b64decode(roots[str(m)]), base64.b64decode(roots[str(n)]), expected
    )


@pytest.mark.parametrize(
    "case", load("event_leaves.json")["events"], ids=lambda c: c["event"]["id"]
)
def test_event_leaf_vectors(case: dict[str, Any]) -> None:
    assert verifier.canonical_json(case["event"]).decode() == case["canonical"]
    assert base64.b64encode(verifier.event_leaf_hash(case["event"])).decode() == case["leaf_hash"]


def test_checkpoint_vector() -> None:
    vector = load("checkpoint.json")
    signer = ledger.Signer(vector["key_name"], bytes.fromhex(vector["seed_hex"]))
    assert signer.vkey == vector["vkey"]
    root = base64.b64decode(MERKLE["roots"]["8"])
    note = signer.sign_checkpoint("audit.example.com/acme", 8, root, from_ms(1_700_000_000_000))
    assert note == vector["note"]
    parsed = verifier.parse_checkpoint(note, vector["vkey"])
    assert (parsed.origin, parsed.size, parsed.root) == ("audit.example.com/acme", 8, root)
