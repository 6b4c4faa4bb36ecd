"""Verify a trailkeeper log without trusting the server: vendor this one file.

Depends only on the standard library and `cryptography` (for Ed25519). Nothing here imports
trailkeeper, so a customer can copy it into their own code base. It implements:

- RFC 8785 JSON canonicalization (the leaf encoding of an event),
- RFC 9162 Merkle tree hashing, inclusion and consistency proof verification,
- C2SP signed-note checkpoints signed with Ed25519 (key id and `vkey` format as in `note`),
- `verify_export`: recompute a whole log from a JSON-lines export and check it against a
  checkpoint, reporting the first event that does not match.

See docs/integrity.md for the formats and a worked example.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import multiprocessing
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.pool import AsyncResult, Pool
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "Checkpoint",
    "ExportReport",
    "VerificationError",
    "canonical_json",
    "erasure_statement",
    "event_leaf_hash",
    "key_id",
    "leaf_hash",
    "node_hash",
    "parse_checkpoint",
    "plain_form",
    "root_hash",
    "verify_consistency",
    "verify_export",
    "verify_inclusion",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()
LEAF_PREFIX = b"\x00"  # RFC 9162 domain separation: leaf hashes, then interior nodes
NODE_PREFIX = b"\x01"
ED25519_ALG = b"\x01"
SIGNATURE_DASH = "\u2014"  # the em dash that starts a signature line in a signed note


class VerificationError(Exception):
    """Anything that does not verify: a bad proof, signature, checkpoint or export."""


# ---- RFC 8785 canonical JSON -------------------------------------------------------------

MAX_SAFE_INTEGER = 2**53 - 1  # I-JSON (RFC 7493): larger integers are not exact in a double
_PLAIN_FLOAT_MIN, _PLAIN_FLOAT_LIMIT = 1e-4, 1e16  # see plain_float
# Keys with a character from U+E000 up: where code point order (Python's) and UTF-16 code
# unit order (RFC 8785's) can differ.
_UTF16_ORDER_MAY_DIFFER = re.compile("[\ue000-\U0010ffff]")
_json_sorted = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
).encode
NOT_PLAIN = object()  # see plain_form


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS): sorted keys (by UTF-16 code units), no spaces, ES6 number format.

    Values with a `plain_form` are written by the json module's C encoder (~5x faster than
    the pure-Python `_jcs`, which makes verifying a large export take seconds rather than
    minutes); the rest by `_jcs`. Property-tested against the `rfc8785` reference
    implementation. Raises VerificationError for what is not I-JSON (NaN, infinities,
    integers beyond 2**53 - 1, lone surrogates, keys that are not strings, other types).
    """
    form = plain_form(value)
    text = _jcs(value) if form is NOT_PLAIN else _json_sorted(form)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise VerificationError("a string holds a lone surrogate, which is not text") from None


def plain_form(value: Any) -> Any:
    """`value` in a form that JSON with sorted keys, no spaces and floats as repr() (the json
    module's and msgspec's sorted encoders) writes exactly as RFC 8785 does, or NOT_PLAIN.

    That is the value itself when every float in it is a `plain_float`, every integer within
    I-JSON and every key a string below U+E000 (the escapes of strings are already the same);
    a copy with its whole-number floats as integers (RFC 8785 writes 18.0 as 18) when those
    are the only other floats. Anything else (tiny or huge floats, other keys, NaN, integers
    beyond I-JSON, other types) is NOT_PLAIN: `_jcs` writes it or says why it cannot.
    """
    pending, whole = [value], False
    pop, extend = pending.pop, pending.extend
    while pending:
        item = pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                continue
            return NOT_PLAIN
        if kind is float:
            if plain_float(item):
                continue
            if exact_whole_float(item):
                whole = True
                continue
            return NOT_PLAIN
        if kind is dict:
            for key in item:
                if type(key) is not str or (
                    not key.isascii() and _UTF16_ORDER_MAY_DIFFER.search(key)
                ):
                    return NOT_PLAIN
            extend(item.values())
        elif kind is list or kind is tuple:
            extend(item)
        else:
            return NOT_PLAIN
    return _whole_floats_as_ints(value) if whole else value


def plain_float(value: float) -> bool:
    """Whether repr() writes this float as RFC 8785 does (ES6 `Number.toString`): both give the
    shortest round-trip digits, but repr() writes a whole number as "12.0" and uses an exponent
    below 1e-4 (ES6: below 1e-6) and from 1e16 (ES6: from 1e21). NaN and infinities are not."""
    return _PLAIN_FLOAT_MIN <= abs(value) < _PLAIN_FLOAT_LIMIT and not value.is_integer()


def exact_whole_float(value: float) -> bool:
    """Whether RFC 8785 writes this float as the integer it equals (a whole number of at most
    2**53 - 1: larger ones are written with zeros for their last digits)."""
    return value.is_integer() and abs(value) <= MAX_SAFE_INTEGER


def _whole_floats_as_ints(value: Any) -> Any:
    """A copy with every whole-number float an int (`plain_form` has checked they are exact)."""
    kind = type(value)
    if kind is float and value.is_integer():
        return int(value)
    if kind is dict:
        return {key: _whole_floats_as_ints(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [_whole_floats_as_ints(item) for item in value]
    return value


def _jcs(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise VerificationError(f"integer {value} is outside the I-JSON range")
        return str(value)
    if isinstance(value, float):
        return _es6_number(value)
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: kv[0].encode("utf-16-be", "surrogatepass"))
        return "{" + ",".join(f"{_jcs(k)}:{_jcs(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_jcs(v) for v in value) + "]"
    raise VerificationError(f"cannot canonicalize {type(value).__name__}")


def _es6_number(value: float) -> str:
    """Number.prototype.toString for doubles, as RFC 8785 requires."""
    if math.isnan(value) or math.isinf(value):
        raise VerificationError("NaN and Infinity are not JSON")
    if value == 0:
        return "0"
    digits, exponent = _shortest_digits(abs(value))
    sign = "-" if value < 0 else ""
    n = exponent + len(digits)  # position of the decimal point
    if len(digits) <= n <= 21:
        return sign + digits + "0" * (n - len(digits))
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    exp = n - 1
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mantissa}e{'+' if exp > 0 else '-'}{abs(exp)}"


def _shortest_digits(value: float) -> tuple[str, int]:
    """Shortest round-trip digits and exponent: value == int(digits) * 10**exponent."""
    mantissa, _, exp = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    if fraction == "0":
        fraction = ""
    digits = (whole + fraction).lstrip("0")
    exponent = int(exp or 0) - len(fraction)
    stripped = digits.rstrip("0")
    return stripped, exponent + (len(digits) - len(stripped))


# ---- RFC 9162 Merkle tree ----------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def event_leaf_hash(event: dict[str, Any]) -> bytes:
    """The leaf of one exported event: its JSON object without `leaf_hash`, canonicalized."""
    body = {k: v for k, v in event.items() if k != "leaf_hash"}
    return leaf_hash(canonical_json(body))


def root_hash(leaves: Iterable[bytes], first: int = 0, frontier: Sequence[bytes] = ()) -> bytes:
    """Merkle tree hash of leaf hashes, in O(n) time and O(log n) memory (a stack of the roots
    of complete subtrees, as leaves come). With `first` > 0 the leaves are those from index
    `first` on, and `frontier` the hashes of the perfect subtrees covering [0, first), largest
    first (what an export of a purged log starts with)."""
    sizes = [1 << bit for bit in reversed(range(first.bit_length())) if first >> bit & 1]
    if len(sizes) != len(frontier):
        raise VerificationError(f"a frontier of {first} leaves has {len(sizes)} hashes")
    # (subtree size, hash), sizes strictly decreasing
    stack: list[tuple[int, bytes]] = list(zip(sizes, frontier, strict=True))
    for leaf in leaves:
        size, value = 1, leaf
        while stack and stack[-1][0] == size:
            left_size, left = stack.pop()
            size, value = left_size + size, node_hash(left, value)
        stack.append((size, value))
    if not stack:
        return EMPTY_ROOT
    value = stack[-1][1]
    for _, left in reversed(stack[:-1]):
        value = node_hash(left, value)
    return value


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 2.1.3.2; rejects proofs of the wrong length."""
    if not 0 <= index < size:
        raise VerificationError(f"index {index} is not in a tree of size {size}")
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    if len(proof) != inner + border:
        raise VerificationError(
            f"inclusion proof has {len(proof)} hashes, expected {inner + border}"
        )
    value = leaf
    for i, sibling in enumerate(proof[:inner]):
        value = node_hash(value, sibling) if (index >> i) & 1 == 0 else node_hash(sibling, value)
    for sibling in proof[inner:]:
        value = node_hash(sibling, value)
    if value != root:
        raise VerificationError("inclusion proof does not lead to the root")


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 2.1.4.2: the tree of size2 extends the tree of size1 without changing it."""
    if not 0 <= size1 <= size2:
        raise VerificationError(f"sizes {size1} and {size2} are not in order")
    if size1 == size2:
        if proof:
            raise VerificationError("a proof between equal sizes must be empty")
        if root1 != root2:
            raise VerificationError("different roots for the same size")
        return
    if size1 == 0:
        if proof:
            raise VerificationError("a proof from the empty tree must be empty")
        return
    if not proof:
        raise VerificationError("empty consistency proof")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 is a power of two: its root is the first node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    first = second = path[0]
    for node in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is too long")
        if fn & 1 or fn == sn:
            first, second = node_hash(node, first), node_hash(node, second)
            while fn & 1 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            second = node_hash(second, node)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise VerificationError("consistency proof is too short")
    if first != root1 or second != root2:
        raise VerificationError("consistency proof does not match the roots")


# ---- checkpoints (C2SP tlog-checkpoint, signed note, Ed25519) ----------------------------


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...]
    text: str
    vkey: str = ""  # the key that verified it (it also signs erasures)


def key_id(name: str, public_key: bytes) -> bytes:
    """Signed-note key id: first 4 bytes of SHA-256(name || '\\n' || 0x01 || public key)."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519_ALG + public_key).digest()[:4]


def parse_vkey(vkey: str) -> tuple[str, bytes, bytes]:
    """`<name>+<hex key id>+<base64(0x01 || public key)>` -> (name, key id, public key)."""
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3 or not all(parts):
        raise VerificationError("malformed verifier key: expected name+keyid+base64")
    name, hex_id, encoded = parts
    try:
        kid = bytes.fromhex(hex_id)
    except ValueError:
        raise VerificationError("malformed verifier key: the key id is not hex") from None
    try:
        raw = base64.b64decode(encoded, validate=True)
    except ValueError:
        raise VerificationError("malformed verifier key: the key is not base64") from None
    if len(raw) != 33 or raw[:1] != ED25519_ALG:
        raise VerificationError("verifier key is not an Ed25519 key")
    if key_id(name, raw[1:]) != kid:
        raise VerificationError("verifier key id does not match its name and key")
    return name, kid, raw[1:]


def parse_checkpoint(note: str, vkey: str) -> Checkpoint:
    """Check the note's signature by the key `vkey` and return the checkpoint it signs.

    Signatures by other keys are ignored (rotation, witnesses); one by this key must verify.
    """
    name, kid, public_key = parse_vkey(vkey)
    body, sep, signatures = note.partition("\n\n")
    if not sep or not body:
        raise VerificationError("checkpoint is not a signed note")
    body += "\n"
    verified = False
    for line in signatures.splitlines():
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != SIGNATURE_DASH:
            raise VerificationError(f"malformed signature line: {line!r}")
        if parts[1] != name:
            continue
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except ValueError:
            raise VerificationError("malformed signature encoding") from None
        if raw[:4] != kid:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(raw[4:], body.encode())
        except InvalidSignature:
            raise VerificationError("checkpoint signature is invalid") from None
        verified = True
    if not verified:
        raise VerificationError(f"checkpoint carries no signature by key {name!r}")
    lines = body.rstrip("\n").split("\n")
    if len(lines) < 3:
        raise VerificationError("checkpoint body needs origin, size and root")
    try:
        size = int(lines[1])
        root = base64.b64decode(lines[2], validate=True)
    except ValueError:
        raise VerificationError("checkpoint size or root is malformed") from None
    if size < 0 or len(root) != 32 or str(size) != lines[1]:
        raise VerificationError("checkpoint size or root is malformed")
    return Checkpoint(lines[0], size, root, tuple(lines[3:]), body, vkey.strip())


# ---- erasures ------------------------------------------------------------------------------

ERASURE_ACTION = "trailkeeper.erasure"


def erasure_statement(origin: str, erasure_id: str, part: int, indexes: Sequence[int]) -> bytes:
    """What the log key signs for one part of an erasure: the events it may redact. Only
    the server can sign it, so a client cannot log an "erasure" that would excuse tampering."""
    listed = ",".join(str(i) for i in indexes)
    return f"trailkeeper erasure\n{origin}\n{erasure_id}\n{part}\n{listed}\n".encode()


def verify_signature(vkey: str, message: bytes, signature: bytes) -> bool:
    """Whether `signature` (key id || Ed25519 signature) is by `vkey` over `message`."""
    _, kid, public_key = parse_vkey(vkey)
    if signature[:4] != kid:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature[4:], message)
    except InvalidSignature:
        return False
    return True


def _erasure_claim(event: dict[str, Any]) -> tuple[str, int, list[int], bytes] | None:
    """(erasure id, part, log indexes, signature) of an erasure event, or None."""
    if event.get("action") != ERASURE_ACTION:
        return None
    metadata = event.get("metadata")
    if not isinstance(metadata, dict):
        return None
    erasure_id, part, indexes = (metadata.get(k) for k in ("erasure", "part", "log_indexes"))
    signature = _recorded_leaf(metadata.get("signature"))
    if not (isinstance(erasure_id, str) and type(part) is int and isinstance(indexes, list)):
        return None
    if not all(type(i) is int for i in indexes):
        return None
    return erasure_id, part, indexes, signature


# ---- whole-log verification from an export -------------------------------------------------


@dataclass(frozen=True)
class ExportReport:
    ok: bool
    message: str
    first_bad_index: int | None = None
    first_bad_id: str | None = None
    events_checked: int = 0


# One export line's outcome: (line number, log index, leaf, recorded leaf, event id, problem,
# erasure claim). A problem (a message) ends verification; then the leaves are empty.
_Claim = tuple[str, int, list[int], bytes]
_Line = tuple[int, int | None, bytes, bytes, str | None, str | None, _Claim | None]
CHUNK_LINES = 1000  # lines a worker process hashes per task
EXPORT_HEADER = "trailkeeper_export"  # the first line of an export of a purged log


@dataclass(frozen=True)
class _Start:
    """Where an export starts: its first log index and the frontier hashes before it."""

    first: int = 0
    frontier: tuple[bytes, ...] = ()


def verify_export(
    lines: Iterable[bytes | str], checkpoint: Checkpoint, workers: int = 1
) -> ExportReport:
    """Recompute the log of one tenant from its JSON-lines export and check the checkpoint.

    The lines are read once, as they come (a file is never held in memory). Every log index
    below the checkpoint size must appear exactly once, in any order (an export is ordered by
    occurred_at); later ones are not covered by the checkpoint and are skipped. An export of
    a log whose first events were purged starts with a header line
    `{"trailkeeper_export": {"first_index": N, "frontier": [...]}}`: the hashes of the perfect
    subtrees covering [0, N), from which the root is recomputed with the events from N on.
    An event that differs from its recorded leaf is accepted as erased only when an erasure
    event in the export, signed by the checkpoint's key, lists its log index. When the tree
    the server recorded (the `leaf_hash` fields) matches the checkpoint, each event is checked
    against its recorded leaf, which names the first altered event precisely. Memory: 33 bytes
    per event of the checkpoint (its leaf, and whether it was seen), 32 more once an event
    differs from its recorded leaf. `workers` > 1 hashes chunks of `CHUNK_LINES` lines in that
    many processes (`multiprocessing`), a few chunks ahead of the one being placed.
    """
    lines = iter(lines)
    try:
        start, lines = _export_start(lines)
    except VerificationError as exc:
        return ExportReport(False, str(exc))
    if start.first > checkpoint.size:
        message = (
            f"the export starts at log index {start.first} (the events before were purged), "
            f"after the checkpoint's size {checkpoint.size}: verify a newer checkpoint, and "
            "that it extends yours with a consistency proof"
        )
        return ExportReport(False, message)
    if workers <= 1:
        return _verify_leaves(_hashed_lines(lines, checkpoint.size), checkpoint, start)
    # Started before the leaves' buffer is filled, which forked workers need not share.
    with multiprocessing.Pool(workers) as pool:
        hashed = _hashed_lines(lines, checkpoint.size, pool, workers)
        return _verify_leaves(hashed, checkpoint, start)


def _export_start(lines: Iterator[bytes | str]) -> tuple[_Start, Iterator[bytes | str]]:
    """The export's header, if its first line is one, and the lines after it."""
    for line in lines:
        if not line.strip():
            continue
        if (b'"' + EXPORT_HEADER.encode() + b'"') not in (
            line if isinstance(line, bytes) else line.encode()
        ):
            return _Start(), itertools.chain([line], lines)
        try:
            header = json.loads(line)[EXPORT_HEADER]
            first, frontier = header["first_index"], header["frontier"]
            hashes = tuple(base64.b64decode(h, validate=True) for h in frontier)
        except (ValueError, KeyError, TypeError):
            raise VerificationError("the export's header line is malformed") from None
        if type(first) is not int or first < 0 or any(len(h) != 32 for h in hashes):
            raise VerificationError("the export's header line is malformed")
        if len(hashes) != first.bit_count():
            raise VerificationError(f"a frontier of {first} leaves has {first.bit_count()} hashes")
        return _Start(first, hashes), lines
    return _Start(), iter(())


def _verify_leaves(hashed: Iterable[_Line], checkpoint: Checkpoint, start: _Start) -> ExportReport:
    first_index, size = start.first, checkpoint.size
    count = size - first_index
    leaves, seen = bytearray(32 * count), bytearray(count)
    recorded: bytearray | None = None  # the recorded leaves, once one differs from its event
    differing: list[tuple[int, str | None]] = []  # (log index, id)
    erased: dict[int, str] = {}  # log index -> the erasure that lists it
    for _, index, leaf, kept, event_id, problem, claim in hashed:
        if problem is not None or index is None:
            return ExportReport(False, problem or "", index, event_id)
        if index < first_index:
            message = f"log index {index} is before the export's first index {first_index}"
            return ExportReport(False, message, index, event_id)
        at = index - first_index
        if seen[at]:
            return ExportReport(False, f"log index {index} appears twice", index, event_id)
        seen[at] = 1
        span = slice(32 * at, 32 * at + 32)
        leaves[span] = leaf
        if kept != leaf and recorded is None:
            recorded = bytearray(leaves)
        if recorded is not None:
            recorded[span] = kept.ljust(32, b"\0")[:32]
        if kept != leaf:
            differing.append((index, event_id))
        if claim is not None and _signed_claim(checkpoint, claim):
            erasure_id, _, listed, _ = claim
            erased.update((i, erasure_id) for i in listed if i < index)
    missing = seen.find(0)
    if missing != -1:
        checked = count - seen.count(0)
        index = missing + first_index
        return ExportReport(False, f"event at log index {index} is missing", index, None, checked)
    excused = {index for index, _ in differing if index in erased and index >= first_index}
    if recorded is not None:
        for index in excused:
            at = 32 * (index - first_index)
            leaves[at : at + 32] = recorded[at : at + 32]
    frontier = start.frontier
    if root_hash(_split_leaves(leaves), first_index, frontier) == checkpoint.root:
        message = f"{count} events match the checkpoint"
        if first_index:
            message += f" (the {first_index} before log index {first_index} were purged)"
        if excused:
            by = sorted({erased[i] for i in excused})
            message += f"; {len(excused)} erased by logged erasure {', '.join(by)}"
        return ExportReport(True, message, events_checked=count)
    unexplained = sorted(d for d in differing if d[0] not in excused)
    if not unexplained:
        return ExportReport(False, _REWRITTEN, events_checked=count)
    first, first_id = unexplained[0]
    if recorded is not None and root_hash(_split_leaves(recorded), first_index, frontier) == (
        checkpoint.root
    ):
        message = f"event {first_id!r} at log index {first} was altered after it was logged"
        return ExportReport(False, message, first, first_id, count)
    where = f"; first event that differs from its recorded leaf: index {first}"
    return ExportReport(False, _REWRITTEN + where, first, first_id, count)


def _signed_claim(checkpoint: Checkpoint, claim: _Claim) -> bool:
    """Whether an erasure event's list of log indexes carries the log key's signature."""
    erasure_id, part, listed, signature = claim
    if not checkpoint.vkey:
        return False
    statement = erasure_statement(checkpoint.origin, erasure_id, part, listed)
    return verify_signature(checkpoint.vkey, statement, signature)


_REWRITTEN = "the log does not match the checkpoint: events or the tree were rewritten"


def _split_leaves(buffer: bytearray) -> Iterator[bytes]:
    return (bytes(buffer[i : i + 32]) for i in range(0, len(buffer), 32))


def _hashed_lines(
    lines: Iterable[bytes | str], size: int, pool: Pool | None = None, workers: int = 1
) -> Iterator[_Line]:
    """`_hash_lines` of every line, in order, in this process or in the pool's `workers`."""
    chunks = ((number, size, chunk) for number, chunk in _chunks(lines, CHUNK_LINES))
    if pool is None:
        for task in chunks:
            yield from _hash_lines(task)
        return
    pending: deque[AsyncResult[list[_Line]]] = deque()
    for task in chunks:
        pending.append(pool.apply_async(_hash_lines, (task,)))
        if len(pending) > 2 * workers:  # bounded: the file is read only as fast as it is hashed
            yield from pending.popleft().get()
    while pending:
        yield from pending.popleft().get()


def _chunks(lines: Iterable[bytes | str], n: int) -> Iterator[tuple[int, list[bytes | str]]]:
    """(number of the first line, up to n lines), in order."""
    chunk: list[bytes | str] = []
    first = 1
    for number, line in enumerate(lines, 1):
        chunk.append(line)
        if len(chunk) == n:
            yield first, chunk
            chunk, first = [], number + 1
    if chunk:
        yield first, chunk


def _hash_lines(task: tuple[int, int, list[bytes | str]]) -> list[_Line]:
    """The outcome of each line of a chunk up to its first problem; blank lines and events
    at or beyond `size` are left out."""
    first, size, lines = task
    outcomes: list[_Line] = []
    for number, line in enumerate(lines, first):
        outcome = _hash_line(number, line, size)
        if outcome is not None:
            outcomes.append(outcome)
            if outcome[5] is not None:
                break
    return outcomes


def _hash_line(number: int, line: bytes | str, size: int) -> _Line | None:
    if not line.strip():
        return None
    try:
        event = json.loads(line)
        index = event["log_index"]
    except (ValueError, KeyError, TypeError):
        return number, None, b"", b"", None, f"line {number} is not an exported event", None
    if type(index) is not int or index < 0:
        return number, None, b"", b"", None, f"line {number} has no valid log_index", None
    if index >= size:
        return None  # newer than the checkpoint: not covered by it
    kept = _recorded_leaf(event.pop("leaf_hash", None))
    event_id = str(event.get("id"))
    try:
        leaf = leaf_hash(canonical_json(event))
    except VerificationError as exc:  # content no server could have hashed (NaN, 2**53)
        return number, index, b"", b"", event_id, f"line {number}: {exc}", None
    return number, index, leaf, kept, event_id, None, _erasure_claim(event)


def _recorded_leaf(value: Any) -> bytes:
    """An event's `leaf_hash` field decoded; b"" when it has none or it is not base64."""
    try:
        return base64.b64decode(value or "", validate=True)
    except (ValueError, TypeError):
        return b""
