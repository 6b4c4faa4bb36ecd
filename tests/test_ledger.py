"""The Merkle log: property tests against a naive RFC 9162 implementation and RFC 8785."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests import naive_merkle as naive
from tests.factories import event_payload
from trailkeeper import ledger, verifier
from trailkeeper.errors import InvalidInput
from trailkeeper.formats import event_document
from trailkeeper.model import Actor, Event, EventIn, from_ms
from trailkeeper.validation import normalize_event

sizes = st.integers(min_value=1, max_value=300)


def public_document(event: Event, log_index: int | None = None) -> dict[str, Any]:
    """The document the leaf covers (docs/integrity.md), at `log_index` if given."""
    document = event_document(event, leaf=False)
    if log_index is not None:
        document["log_index"] = log_index
    return document


def fixed_event(action: str, actor: Actor, metadata: dict[str, Any], log_index: int) -> Event:
    """An event with fixed id, tenant and times, for leaves compared byte for byte."""
    return Event(
        id="e1",
        tenant="acme",
        occurred_at=from_ms(1_700_000_000_123),
        received_at=from_ms(1_700_000_000_456),
        action=action,
        actor=actor,
        metadata=metadata,
        log_index=log_index,
    )


def leaves_of(n: int) -> list[bytes]:
    return [naive.leaf(f"leaf {i}".encode()) for i in range(n)]


@given(st.integers(min_value=0, max_value=300))
def test_root_matches_naive(n: int) -> None:
    leaves = leaves_of(n)
    assert verifier.root_hash(leaves) == naive.mth(leaves)
    at_once, one_by_one = ledger.Frontier(0, {}), ledger.Frontier(0, {})
    at_once.extend(leaves)
    for leaf in leaves:
        one_by_one.extend([leaf])
    assert at_once.root() == one_by_one.root() == naive.mth(leaves)


@given(
    st.integers(min_value=0, max_value=300),
    st.lists(st.integers(min_value=0, max_value=70), max_size=5),
    st.integers(min_value=0, max_value=6),
)
def test_frontier_resumes_from_stored_nodes(first: int, runs: list[int], min_level: int) -> None:
    """From any stored tree, runs of leaves of any length produce exactly the perfect nodes
    they complete (from `min_level` up), and the right root after each run."""
    leaves = leaves_of(first + sum(runs))
    stored = naive.perfect_nodes(leaves[:first])
    frontier = ledger.Frontier(first, stored)
    created: dict[tuple[int, int], bytes] = {}
    end = first
    for run in runs:
        made = frontier.extend(leaves[end : end + run], min_level)
        assert len(made) == len({(lv, ix) for lv, ix, _ in made}), "no node twice"
        created.update({(lv, ix): h for lv, ix, h in made})
        end += run
        assert frontier.size == end
        assert frontier.root() == naive.mth(leaves[:end])
    expected = {
        node: value
        for node, value in naive.perfect_nodes(leaves).items()
        if node not in stored and node[0] >= min_level
    }
    assert created == expected, "exactly the new perfect nodes are produced"


@given(st.data(), sizes)
def test_inclusion_proofs(data: st.DataObject, n: int) -> None:
    leaves = leaves_of(n)
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    ranges = ledger.inclusion_ranges(index, n)
    proof = ledger.hash_ranges(ranges, naive.perfect_nodes(leaves))
    assert proof == naive.path(index, leaves)
    assert len(ledger.nodes_for(ranges)) <= 2 * max(1, math.ceil(math.log2(n))) + 2
    root = naive.mth(leaves)
    verifier.verify_inclusion(index, n, leaves[index], proof, root)
    # every alteration is rejected
    with pytest.raises(verifier.VerificationError):
        verifier.verify_inclusion(index, n, naive.leaf(b"forged"), proof, root)
    if proof:
        with pytest.raises(verifier.VerificationError):
            verifier.verify_inclusion(index, n, leaves[index], proof[:-1], root)
        with pytest.raises(verifier.VerificationError):
            verifier.verify_inclusion(index, n, leaves[index], [*proof, proof[0]], root)
        bad = list(proof)
        bad[data.draw(st.integers(0, len(bad) - 1))] = naive.leaf(b"x")
        with pytest.raises(verifier.VerificationError):
            verifier.verify_inclusion(index, n, leaves[index], bad, root)
    if n > 1:
        other = (index + 1) % n
        with pytest.raises(verifier.VerificationError):
            verifier.verify_inclusion(other, n, leaves[index], proof, root)


@given(st.data(), sizes)
def test_consistency_proofs(data: st.DataObject, n: int) -> None:
    leaves = leaves_of(n)
    m = data.draw(st.integers(min_value=0, max_value=n))
    ranges = ledger.consistency_ranges(m, n)
    proof = ledger.hash_ranges(ranges, naive.perfect_nodes(leaves))
    assert proof == naive.proof(m, leaves)
    old_root, new_root = naive.mth(leaves[:m]), naive.mth(leaves)
    verifier.verify_consistency(m, n, old_root, new_root, proof)
    if 0 < m < n:
        with pytest.raises(verifier.VerificationError):
            verifier.verify_consistency(m, n, naive.leaf(b"rewritten"), new_root, proof)
        with pytest.raises(verifier.VerificationError):
            verifier.verify_consistency(m, n, old_root, naive.leaf(b"rewritten"), proof)
        with pytest.raises(verifier.VerificationError):
            verifier.verify_consistency(m, n, old_root, new_root, proof[:-1])
        with pytest.raises(verifier.VerificationError):
            verifier.verify_consistency(m, n, old_root, new_root, [*proof, proof[0]])
        # a rewritten history (one old leaf changed) cannot be proven consistent
        rewritten = list(leaves)
        rewritten[data.draw(st.integers(0, m - 1))] = naive.leaf(b"changed")
        forged = naive.proof(m, rewritten)
        with pytest.raises(verifier.VerificationError):
            verifier.verify_consistency(m, n, old_root, naive.mth(rewritten), forged)


@given(sizes)
def test_range_root_of_any_prefix(n: int) -> None:
    leaves = leaves_of(n)
    nodes = naive.perfect_nodes(leaves)
    for m in {0, 1, n // 2, n - 1, n}:
        [root] = ledger.hash_ranges([(0, m)], nodes)
        assert root == naive.mth(leaves[:m])


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400)
@given(json_values)
def test_canonical_json_is_rfc8785(value: Any) -> None:
    assert verifier.canonical_json(value) == rfc8785.dumps(value)


# Anything JSON can hold, with the cases where the json module's output is not RFC 8785:
# integers past I-JSON, characters that sort differently in UTF-16, and floats.
wider_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",)))
    | st.sampled_from(["\ue000", "\uffff", "\U0001f600", "a", "\u00e9"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=3) | st.sampled_from(["\ue000", "\U0001f600", "\uff61"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=500)
@given(wider_json_values)
def test_canonical_json_is_rfc8785_or_refuses(value: Any) -> None:
    """Either path gives RFC 8785's bytes exactly; what RFC 8785 refuses, so does the verifier.
    A plain form is written by msgspec's sorted encoder as by the json module (the server's
    leaves take msgspec)."""
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.IntegerDomainError:
        expected = None
    form = verifier.plain_form(value)
    if form is not verifier.NOT_PLAIN:
        assert msgspec.json.encode(form, order="sorted") == expected
    if expected is None:
        with pytest.raises(verifier.VerificationError):
            verifier.canonical_json(value)
    else:
        assert verifier.canonical_json(value) == expected


@settings(max_examples=1000)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_float_is_rfc8785_either_way(value: float) -> None:
    """Floats that repr() writes as ES6 does go through the json module, the rest through
    `_jcs`: every finite double comes out as RFC 8785 writes it."""
    assert verifier.canonical_json({"x": value, "l": [value]}) == rfc8785.dumps(
        {"x": value, "l": [value]}
    )


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        (12.5, True),
        (0.0001, True),
        (123456789.125, True),
        (-0.5, True),
        (12.0, True),  # repr "12.0", RFC 8785 "12": written as the int
        (-0.0, True),  # RFC 8785 "0"
        (9007199254740991.0, True),
        (0.00001, False),  # repr "1e-05", RFC 8785 "0.00001"
        (1e16, False),
        (2.0**60, False),  # RFC 8785 "1152921504606847000", not the exact integer
    ],
)
def test_which_floats_take_the_json_module(value: float, plain: bool) -> None:
    assert (verifier.plain_form([value]) is not verifier.NOT_PLAIN) is plain
    assert verifier.canonical_json([value]) == rfc8785.dumps([value])


@settings(max_examples=2000)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_msgspec_writes_plain_floats_as_rfc8785(value: float) -> None:
    """The leaf's fast path keeps msgspec's bytes for metadata with a plain form: msgspec must
    write every float of one exactly as RFC 8785 does."""
    form = verifier.plain_form({"note": "v1.2", "x": [value]})
    if verifier.plain_float(value):
        assert msgspec.json.encode(value) == rfc8785.dumps(value)
    if form is not verifier.NOT_PLAIN:
        assert msgspec.json.encode(form, order="sorted") == rfc8785.dumps(form)


def test_float_metadata_keeps_the_msgspec_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Amounts like 12.5, or a whole 3.0 (RFC 8785 "3"), no longer send the leaf to the slower
    canonicalizer; a tiny 0.00001 (RFC 8785 "0.00001", msgspec "1e-05") still does. Every
    leaf is RFC 8785."""
    event = fixed_event(
        action="pay",
        actor=Actor(id="u1"),
        metadata={"amount": 12.5, "rate": 0.25, "items": [{"n": 3.0}, 7]},
        log_index=3,
    )
    whole = msgspec.structs.replace(event, metadata={"amount": 3.0, "rate": 0.5})
    tiny = msgspec.structs.replace(event, metadata={"amount": 3.0, "rate": 0.00001})
    expected = [
        rfc8785.dumps(msgspec.to_builtins(public_document(e))) for e in (event, whole, tiny)
    ]
    assert ledger.canonical_event(tiny) == expected[2]

    def refuse(value: Any) -> bytes:
        raise AssertionError("took the slow path")

    monkeypatch.setattr(ledger, "canonical_json", refuse)
    assert ledger.canonical_event(event) == expected[0]
    assert ledger.canonical_event(whole) == expected[1]
    for one, bytes_ in zip((event, whole), expected, strict=False):
        assert ledger.event_leaves([one], 3) == [naive.leaf(bytes_)]
    with pytest.raises(AssertionError, match="slow path"):
        ledger.canonical_event(tiny)


def test_keys_sort_by_utf16_code_units_not_code_points() -> None:
    """U+1F600 is the surrogate pair D83D DE00 in UTF-16, so it sorts before U+E000 there,
    although its code point is larger: the json module's sort would get this wrong."""
    value = {"\ue000": 1, "\U0001f600": 2}
    assert verifier.plain_form(value) is verifier.NOT_PLAIN
    assert verifier.canonical_json(value) == '{"\U0001f600":2,"\ue000":1}'.encode()


def test_batch_leaves_sort_keys_by_utf16() -> None:
    """Metadata keys from U+E000 up send a leaf to the RFC 8785 fallback, which msgspec's
    code-point order would get wrong here."""
    given_event = msgspec.convert(
        {"action": "a", "actor": {"id": "u"}, "metadata": {"\ue000": 1, "\U0001f600": 2}},
        EventIn,
    )
    item = normalize_event("acme", given_event, from_ms(1_714_600_000_000))
    document = msgspec.to_builtins(public_document(item.event, 7))
    expected = naive.leaf(rfc8785.dumps(document))
    assert ledger.event_leaves([item.event], 7) == [expected]


@pytest.mark.parametrize(
    "metadata",
    [
        {"amount": 15.0, "rate": 12.5},
        {"amount": 15.0, "nested": [{"n": -0.0}, 3], "name": "caf\u00e9"},
        {"\ue000": 18.0, "a": 2.0},  # the RFC 8785 encoder, for the key order
    ],
)
def test_batch_leaves_of_whole_number_floats(metadata: dict) -> None:
    """Whole-number floats are written as integers: the leaf must be RFC 8785's (msgspec
    writes 15.0, not 15)."""
    item = normalize_event(
        "acme",
        msgspec.convert({"action": "a", "actor": {"id": "u"}, "metadata": metadata}, EventIn),
        from_ms(1_714_600_000_000),
    )
    leaves = ledger.event_leaves([item.event], 9)
    document = msgspec.to_builtins(public_document(item.event, 9))
    assert leaves == [naive.leaf(rfc8785.dumps(document))]


def test_exported_events_take_the_fast_path() -> None:
    """What an export holds (text, integers, nested objects, non-ASCII names) needs no `_jcs`."""
    event = {
        "id": "e1",
        "tenant": "acme",
        "occurred_at": "2024-05-01T12:00:00.123Z",
        "action": "créé",
        "actor": {"id": "u1", "name": "José", "staff": False, "email": None},
        "metadata": {"n": 12, "tags": ["a", "b"], "nested": {"z": None, "a": True}},
        "log_index": 7,
    }
    assert verifier.plain_form(event) is event
    assert verifier.canonical_json(event) == rfc8785.dumps(event)


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
@example({"amount": 15.0, "rate": 12.5})
@example({"zero": -0.0, "items": [{"n": 3.0}, "15.0"]})
@example({"amount": 15.0, "tiny": 1e-7})
@example({"big": 1e20, "\ue000": {"\U0001f600": 2.0**60}})
def test_event_leaf_fast_path_equals_rfc8785(metadata: dict[str, Any]) -> None:
    event = fixed_event(
        action="créé \u2028",
        actor=Actor(id="u\U0001f600", staff=True),
        metadata=metadata,
        log_index=7,
    )
    document = msgspec.to_builtins(public_document(event))
    assert ledger.canonical_event(event) == rfc8785.dumps(document)
    # and a customer recomputes the same leaf from the exported JSON line
    exported = msgspec.json.decode(msgspec.json.encode(document))
    assert [verifier.event_leaf_hash(exported)] == ledger.event_leaves([event], 7)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (-0.0, "0"),
        (0.1, "0.1"),
        (123456789.125, "123456789.125"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
    ],
)
def test_es6_number_formatting(value: float, expected: str) -> None:
    assert verifier.canonical_json(value) == expected.encode()


optional_text = st.none() | st.text(min_size=1, max_size=12)


@settings(max_examples=300)
@given(
    st.integers(min_value=0, max_value=40),
    optional_text,
    optional_text,
    optional_text,
    st.none() | st.sampled_from(["203.0.113.7", "2001:db8::1"]),
    st.dictionaries(st.text(max_size=8), json_values, max_size=4),
)
def test_leaf_of_every_field_is_rfc8785_of_the_public_document(
    n: int,
    type_: str | None,
    source: str | None,
    user_agent: str | None,
    ip: str | None,
    metadata: dict[str, Any],
) -> None:
    """Events as ingest makes them, every optional field present or not: the leaf is RFC 8785
    of exactly what the API shows."""
    payload = event_payload(n, metadata=metadata, type=type_, source=source)
    if ip is not None or user_agent is not None:
        payload["context"] = {"ip": ip, "user_agent": user_agent}
    try:
        given_event = msgspec.convert(payload, EventIn)
        item = normalize_event("acme", given_event, from_ms(1_714_600_000_000))
    except (msgspec.ValidationError, InvalidInput):
        return  # refused by validation (NUL, nesting, huge integers): never gets a leaf
    event = msgspec.structs.replace(item.event, log_index=n)
    expected = rfc8785.dumps(msgspec.to_builtins(public_document(event)))
    assert ledger.canonical_event(event) == expected


@settings(max_examples=100)
@given(
    st.lists(
        st.tuples(
            st.dictionaries(st.text(max_size=8), json_values, max_size=4),
            st.text(max_size=20),
        ),
        max_size=12,
    ),
    st.integers(min_value=0, max_value=2**40),
)
def test_batch_leaves_equal_rfc8785_leaves(
    contents: list[tuple[dict[str, Any], str]], first: int
) -> None:
    """A batch: documents of every length, with and without floats or characters that take
    the RFC 8785 fallback, each hash alone."""
    items = []
    for n, (metadata, action) in enumerate(contents):
        try:
            given_event = msgspec.convert(
                {"action": action or "a", "actor": {"id": f"u{n}"}, "metadata": metadata}, EventIn
            )
            items.append(normalize_event("acme", given_event, from_ms(1_714_600_000_000 + n)))
        except (msgspec.ValidationError, InvalidInput):
            continue
    events = [item.event for item in items]
    leaves = ledger.event_leaves(events, first)
    expected = [
        naive.leaf(rfc8785.dumps(msgspec.to_builtins(public_document(event, first + n))))
        for n, event in enumerate(events)
    ]
    assert leaves == expected
