"""Group commit without an engine (a fake transaction that records what each commit held),
and how SQLite splits a batch into multi-row statements."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trailkeeper.errors import Unavailable
from trailkeeper.store.group_commit import MAX_GROUP, GroupCommit, GroupCommitByKey
from trailkeeper.store.sql import INSERT_COLUMNS
from trailkeeper.store.sqlite import MAX_ROWS_PER_INSERT, chunk_sizes, rows_per_insert


class FakeDatabase:
    """Writes go to a transaction's pending list; a savepoint undoes its own part; commit
    publishes the pending writes (or fails when told to)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.committed: list[list[str]] = []  # the writes of each commit
        self.fail_next_commit = False

    @contextmanager
    def transaction(self) -> Iterator[list[str]]:
        pending: list[str] = []
        yield pending
        if self.fail_next_commit:
            self.fail_next_commit = False
            raise OSError("disk full")
        self.committed.append(pending)

    @contextmanager
    def savepoint(self, pending: list[str]) -> Iterator[None]:
        mark = len(pending)
        try:
            yield
        except BaseException:
            del pending[mark:]
            raise

    def group(self, timeout: float = 5.0) -> GroupCommit[list[str]]:
        return GroupCommit(self.lock, self.transaction, self.savepoint, timeout)


def write(name: str, fail: bool = False) -> Callable[[list[str]], str]:
    def work(pending: list[str]) -> str:
        pending.append(name)
        if fail:
            raise ValueError(f"{name} is invalid")
        return f"{name} stored"

    return work


def run_queued(
    db: FakeDatabase, group: GroupCommit[list[str]], works: list[Callable[[list[str]], str]]
) -> list[str | BaseException]:
    """Queue every work while the lock is held elsewhere, then let them run."""
    results: list[str | BaseException] = [RuntimeError("not run")] * len(works)

    def submit(n: int) -> None:
        try:
            results[n] = group.run(works[n])
        except Exception as exc:
            results[n] = exc

    with db.lock:
        threads = [threading.Thread(target=submit, args=(n,)) for n in range(len(works))]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(group._queue) == len(works))
    for thread in threads:
        thread.join()
    return results


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


def test_batches_queued_behind_a_writer_share_one_commit() -> None:
    db = FakeDatabase()
    results = run_queued(db, db.group(), [write(f"b{n}") for n in range(5)])
    assert results == [f"b{n} stored" for n in range(5)]
    assert db.committed == [[f"b{n}" for n in range(5)]]


def test_a_failing_batch_is_undone_alone_and_gets_its_own_error() -> None:
    db = FakeDatabase()
    results = run_queued(db, db.group(), [write("a"), write("b", fail=True), write("c")])
    assert results[0] == "a stored"
    assert isinstance(results[1], ValueError)
    assert str(results[1]) == "b is invalid"
    assert results[2] == "c stored"
    assert db.committed == [["a", "c"]]


def test_a_lone_failing_batch_leaves_nothing_and_gets_its_own_error() -> None:
    db = FakeDatabase()
    group = db.group()
    with pytest.raises(ValueError, match="alone is invalid"):
        group.run(write("alone", fail=True))
    assert group.run(write("next")) == "next stored"
    assert db.committed == [["next"]]


def test_a_failed_commit_fails_every_batch_in_it() -> None:
    db = FakeDatabase()
    db.fail_next_commit = True
    results = run_queued(db, db.group(), [write("a"), write("b", fail=True), write("c")])
    assert isinstance(results[0], OSError)
    assert isinstance(results[1], ValueError)  # its own error, not the commit's
    assert isinstance(results[2], OSError)
    assert db.committed == []
    group = db.group()
    assert group.run(write("d")) == "d stored"  # the next transaction is unaffected
    assert db.committed == [["d"]]


def test_groups_are_bounded() -> None:
    db = FakeDatabase()
    count = MAX_GROUP + 3
    results = run_queued(db, db.group(), [write(f"b{n}") for n in range(count)])
    assert results == [f"b{n} stored" for n in range(count)]
    assert [len(writes) for writes in db.committed] == [MAX_GROUP, 3]
    assert [w for writes in db.committed for w in writes] == [f"b{n}" for n in range(count)]


def test_a_batch_that_times_out_waiting_is_withdrawn_and_never_written() -> None:
    db = FakeDatabase()
    group = db.group(timeout=0.05)
    with db.lock, pytest.raises(Unavailable, match="timed out"):
        group.run(write("late"))
    assert group.run(write("next")) == "next stored"
    assert db.committed == [["next"]]


def test_lanes_are_made_per_key_and_dropped_when_idle() -> None:
    databases: dict[str, FakeDatabase] = {}

    def make(key: str) -> GroupCommit[list[str]]:
        return databases.setdefault(key, FakeDatabase()).group()

    lanes: GroupCommitByKey[str, list[str]] = GroupCommitByKey(make)
    assert lanes.run("acme", write("a")) == "a stored"
    assert lanes.run("globex", write("g")) == "g stored"
    assert databases["acme"].committed == [["a"]]
    assert databases["globex"].committed == [["g"]]
    assert len(lanes) == 0


@given(st.integers(0, 5000), st.sampled_from([1, 2, 64, 512]))
def test_sqlite_chunks_cover_a_batch_with_few_statement_shapes(count: int, largest: int) -> None:
    sizes = chunk_sizes(count, largest)
    assert sum(sizes) == count
    assert all(size <= largest and size & (size - 1) == 0 for size in sizes)
    assert sizes == sorted(sizes, reverse=True)


def test_sqlite_rows_per_statement_fit_the_builds_variable_limit() -> None:
    columns = len(INSERT_COLUMNS)
    assert rows_per_insert(32_766) == MAX_ROWS_PER_INSERT
    assert rows_per_insert(999) * columns <= 999 < 2 * rows_per_insert(999) * columns
    assert rows_per_insert(columns) == 1
