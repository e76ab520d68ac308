"""The run store's contract (crawler/state/base.py), run against every store implementation:
runs, finished requests, claimed names, validators, commits that survive a SIGKILL, crawl
mode's frontier, and recovery from a manifest whose tail a crash tore."""

from __future__ import annotations

import hashlib
import os
import select
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crawler.output.manifest import Record, replay_into, replay_tail
from crawler.state.base import Batch, DoneRow, FrontierStore, Row, RunStore, Validators
from crawler.state.sqlite import RunState

ROOT = Path(__file__).resolve().parents[2]

# One factory per store implementation: OUT folder -> a store of that folder.
STORE_FACTORIES: list[Callable[[Path], RunStore]] = [
    lambda path: RunState(path / ".crawler" / "state.sqlite3"),
]
STORE_IDS = ["sqlite"]

T1 = "2024-01-01T00:00:00.000Z"
T2 = "2024-01-02T00:00:00.000Z"
T3 = "2024-01-03T00:00:00.000Z"


def open_store(index: int, out: Path) -> RunStore:
    """Open store implementation ``index`` on the output folder ``out`` (the child processes
    below call this too)."""
    (out / ".crawler").mkdir(parents=True, exist_ok=True)
    return STORE_FACTORIES[index](out)


@pytest.fixture(params=range(len(STORE_FACTORIES)), ids=STORE_IDS)
def store_factory(request: pytest.FixtureRequest) -> Iterator[Callable[[Path], RunStore]]:
    """``store_factory(out)`` opens a store; ``.index`` names it to a child process."""
    index: int = request.param
    opened: list[RunStore] = []

    def factory(out: Path) -> RunStore:
        store = open_store(index, out)
        opened.append(store)
        return store

    factory.index = index  # type: ignore[attr-defined]
    yield factory
    for store in opened:
        try:
            store.close()
        except Exception:
            pass


def ok_row(key: str, size: int = 10, attempts: int = 1) -> DoneRow:
    return DoneRow(key, True, None, 200, size, attempts)


def failed_row(key: str, kind: str = "http", status: int | None = 404, attempts: int = 1):
    return DoneRow(key, False, kind, status, None, attempts)


def run_until_killed(code: str, *args: str) -> None:
    """Run ``code`` in a child Python that imports crawler; once it prints "ready", kill it
    with SIGKILL (no atexit, no finally, no close: a crash)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        readable, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if readable else b""
        if line.strip() != b"ready":
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"child did not get ready: {line!r}\n{err.decode(errors='replace')}")
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


# --- runs -------------------------------------------------------------------------------


def test_a_new_store_has_no_unfinished_run(tmp_path, store_factory):
    store = store_factory(tmp_path)
    assert store.unfinished_run() is None


def test_a_started_run_is_unfinished_until_it_finishes(tmp_path, store_factory):
    """The next invocation resumes a run that never finished, and starts afresh otherwise."""
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    assert store.run_id == "run-1"
    assert store.run_started_at() == T1
    assert store.unfinished_run() == "run-1"
    store.finish_run(T2, 1)
    assert store.unfinished_run() is None


def test_an_unfinished_run_is_offered_after_reopening_and_resumes(tmp_path, store_factory):
    """start_run is durable at once; resume_run brings back its start time and its rows."""
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    assert store.has_done() is False
    store.add_done(ok_row("k1"))
    store.flush(0)
    assert store.has_done() is True
    store.close()

    store = store_factory(tmp_path)
    assert store.unfinished_run() == "run-1"
    store.resume_run("run-1")
    assert store.run_id == "run-1"
    assert store.run_started_at() == T1
    assert store.has_done() is True
    assert store.is_done("k1") is True
    assert store.is_done("k2") is False


def test_starting_a_run_abandons_the_unfinished_one(tmp_path, store_factory):
    """--fresh: the abandoned run is never offered for resuming again."""
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    store.add_done(ok_row("k1"))
    store.flush(0)
    store.start_run("run-2", T2)
    assert store.unfinished_run() == "run-2"
    assert store.run_started_at() == T2
    assert store.is_done("k1") is False  # rows belong to their run
    assert store.has_done() is False
    store.finish_run(T3, 0)
    store.close()

    store = store_factory(tmp_path)
    assert store.unfinished_run() is None


def test_a_finished_run_stays_finished_after_reopening(tmp_path, store_factory):
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    store.finish_run(T2, 0)
    store.close()
    store = store_factory(tmp_path)
    assert store.unfinished_run() is None


# --- commits ----------------------------------------------------------------------------


_COMMIT_CHILD = """
    import sys, time
    from pathlib import Path
    from crawler.state.base import DoneRow, Validators
    from tests.state.test_store_contract import open_store

    store = open_store(int(sys.argv[1]), Path(sys.argv[2]))
    store.start_run("run-1", "2024-01-01T00:00:00.000Z")
    assert store.claim_name("j", "Page.html", "c0")  # durable at once, no commit
    for n in range(3):
        store.add_done(DoneRow(f"c{n}", True, None, 200, 10, 1))
    store.flush(100)
    store.add_done(DoneRow("c3", False, "http", 404, None, 2))
    store.set_validators("c0", Validators('"e0"', None, "j/c0.html", 10, "ab", "text/html", None))
    store.commit(store.seal(250))
    # Batched, and one batch sealed, but never committed: a crash loses them.
    for n in range(5):
        store.add_done(DoneRow(f"u{n}", True, None, 200, 10, 1))
    store.set_validators("u0", Validators('"e1"', None, "j/u0.html", 10, "cd", None, None))
    sealed = store.seal(999)
    store.add_done(DoneRow("u9", True, None, 200, 10, 1))
    print("ready", flush=True)
    time.sleep(120)
"""


def test_only_committed_rows_survive_a_kill(tmp_path, store_factory):
    """After kill -9 a resumed run sees exactly what was committed: it skips those requests,
    fetches the uncommitted ones again, and replays the manifest from the last offset."""
    run_until_killed(_COMMIT_CHILD, str(store_factory.index), str(tmp_path))

    store = store_factory(tmp_path)
    assert store.unfinished_run() == "run-1"
    store.resume_run("run-1")
    assert store.run_started_at() == T1
    for key in ("c0", "c1", "c2", "c3"):
        assert store.is_done(key) is True, key
    for key in ("u0", "u1", "u2", "u3", "u4", "u9"):
        assert store.is_done(key) is False, key
    assert store.committed_manifest_offset() == 250
    assert store.totals() == {
        "requests": 4,
        "ok": 3,
        "failed": 1,
        "bytes": 30,
        "retries": 1,
        "by_kind": {"http": 1},
        "by_status": {"200": 3, "404": 1},
    }
    assert store.validators("c0") == Validators(
        '"e0"', None, "j/c0.html", 10, "ab", "text/html", None
    )
    assert store.validators("u0") is None
    assert store.claim_name("j", "page.HTML", "other") is False
    assert store.claim_name("j", "Page.html", "c0") is True


def test_nothing_batched_is_durable_before_commit(tmp_path, store_factory):
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    store.add_done(ok_row("k1"))
    store.close()
    store = store_factory(tmp_path)
    store.resume_run("run-1")
    assert store.is_done("k1") is False
    assert store.committed_manifest_offset() == 0


def test_is_done_counts_committed_rows_only(tmp_path, store_factory):
    """A resumed run skips what was committed; a row still in a batch is not done yet (the
    run asks only after recovery has committed the replayed rows)."""
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    store.add_done(ok_row("k1"))
    assert store.is_done("k1") is False
    store.flush(0)
    assert store.is_done("k1") is True


def test_an_unsealed_batch_is_committed_by_the_next_flush(tmp_path, store_factory):
    """A commit that failed gives its rows back; the next flush commits them."""
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    store.add_done(ok_row("old"))
    sealed = store.seal(100)
    assert [row.key for row in sealed.done] == ["old"]
    assert sealed.manifest_offset == 100
    store.add_done(ok_row("new"))
    store.unseal(sealed)
    store.flush(200)
    store.close()

    store = store_factory(tmp_path)
    store.resume_run("run-1")
    assert store.is_done("old") is True
    assert store.is_done("new") is True
    assert store.committed_manifest_offset() == 200
    assert store.totals()["requests"] == 2


def test_unsealed_rows_go_ahead_of_newer_rows(tmp_path, store_factory):
    """When the same request is in both, the newer row (and validators) is what stays."""
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    store.add_done(failed_row("k", "timeout", None, attempts=1))
    store.set_validators("k", Validators('"old"', None, "j/k", 1, "aa", None, None))
    sealed = store.seal(100)
    store.add_done(ok_row("k", size=7, attempts=2))
    store.set_validators("k", Validators('"new"', None, "j/k", 7, "bb", None, None))
    store.unseal(sealed)
    store.flush(200)

    totals = store.totals()
    assert (totals["requests"], totals["ok"], totals["bytes"]) == (1, 1, 7)
    assert totals["by_kind"] == {}
    validators = store.validators("k")
    assert validators is not None and validators.etag == '"new"'


def test_committing_an_empty_batch_at_offset_zero_changes_nothing(tmp_path, store_factory):
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    store.add_done(ok_row("k1"))
    store.flush(300)
    before = store.totals()

    store.commit(Batch())
    store.commit(store.seal(0))
    store.flush(0)

    assert store.committed_manifest_offset() == 300
    assert store.totals() == before
    assert store.is_done("k1") is True


def test_the_manifest_offset_belongs_to_the_current_run(tmp_path, store_factory):
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    store.add_done(ok_row("k1"))
    store.flush(300)
    store.finish_run(T2, 0)
    store.start_run("run-2", T2)
    assert store.committed_manifest_offset() == 0


# --- claimed names ----------------------------------------------------------------------


def test_a_name_is_claimed_once_ignoring_case(tmp_path, store_factory):
    """Two URLs never write the same file, also on a case-insensitive filesystem."""
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    assert store.claim_name("j", "A.html", "k1") is True
    assert store.claim_name("j", "a.html", "k2") is False
    assert store.claim_name("j", "A.HTML", "k2") is False
    assert store.claim_name("j", "a.html", "k1") is True  # the holder asks again: still its
    assert store.claim_name("other", "a.html", "k2") is True  # names are per job
    assert store.claim_name("j", "b.html", "k2") is True


def test_a_claim_is_durable_without_a_commit(tmp_path, store_factory):
    """A resumed run never hands a claimed name to another request."""
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    assert store.claim_name("j", "A.html", "k1") is True
    store.close()

    store = store_factory(tmp_path)
    store.resume_run("run-1")
    assert store.claim_name("j", "a.html", "k2") is False
    assert store.claim_name("j", "a.html", "k1") is True


# --- validators -------------------------------------------------------------------------

V = Validators(
    '"etag-1"', "Mon, 01 Jan 2024 00:00:00 GMT", "j/a.html", 5, "ff" * 32, "text/html", "utf-8"
)


def test_validators_are_kept_for_the_next_run(tmp_path, store_factory):
    """What a conditional refetch sends: visible after the flush, after reopening, and in
    the next run."""
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    assert store.validators("k") is None
    store.set_validators("k", V)
    store.flush(0)
    assert store.validators("k") == V
    store.finish_run(T2, 0)
    store.close()

    store = store_factory(tmp_path)
    store.start_run("run-2", T2)
    assert store.validators("k") == V
    assert store.validators("unknown") is None


def test_newer_validators_replace_older_ones(tmp_path, store_factory):
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    store.set_validators("k", V)
    store.flush(0)
    newer = Validators(None, None, "j/a.html", 9, "ee" * 32, None, None)
    store.set_validators("k", newer)
    store.flush(0)
    assert store.validators("k") == newer


# --- totals -----------------------------------------------------------------------------


def test_totals_count_the_current_run_only(tmp_path, store_factory):
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    for n in range(4):
        store.add_done(ok_row(f"old{n}", size=1000, attempts=5))
    store.add_done(failed_row("old-failed", "tls", None))
    store.flush(10)
    store.finish_run(T2, 1)

    store.start_run("run-2", T2)
    store.add_done(ok_row("a", size=100, attempts=1))
    store.add_done(ok_row("b", size=50, attempts=3))
    store.add_done(failed_row("c", "http", 404, attempts=1))
    store.add_done(failed_row("d", "timeout", None, attempts=4))
    store.add_done(DoneRow("e", False, "http", 503, 0, 2))
    store.flush(20)

    assert store.totals() == {
        "requests": 5,
        "ok": 2,
        "failed": 3,
        "bytes": 150,
        "retries": 6,
        "by_kind": {"http": 2, "timeout": 1},
        "by_status": {"200": 2, "404": 1, "503": 1},
    }


def test_totals_of_an_empty_run_are_zero(tmp_path, store_factory):
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    assert store.totals() == {
        "requests": 0,
        "ok": 0,
        "failed": 0,
        "bytes": 0,
        "retries": 0,
        "by_kind": {},
        "by_status": {},
    }


def test_totals_include_the_resumed_parts(tmp_path, store_factory):
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    store.add_done(ok_row("a", size=10))
    store.flush(10)
    store.close()

    store = store_factory(tmp_path)
    store.resume_run(store.unfinished_run() or "")
    store.add_done(ok_row("b", size=20, attempts=2))
    store.flush(20)
    totals = store.totals()
    assert (totals["requests"], totals["ok"], totals["bytes"], totals["retries"]) == (2, 2, 30, 1)


# --- the frontier -----------------------------------------------------------------------


def link(key: str, depth: int = 1, referrer: str | None = "http://x/", origin: int | None = None):
    return ("j", key, f"http://x/{key}", depth, referrer, origin)


def read_all(frontier: FrontierStore, page: int = 3) -> list[Row]:
    """Every queued row, paging with ``after`` = the last id read (bounded)."""
    rows: list[Row] = []
    after = 0
    for _ in range(1000):
        batch = frontier.read(after, page)
        assert len(batch) <= page
        if not batch:
            return rows
        rows += batch
        after = batch[-1].id
    raise AssertionError("read never ran dry")


def test_seeds_are_registered_once_per_claim(tmp_path, store_factory):
    """A URL listed twice in the job file is fetched once."""
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    frontier = store.frontier("claim-1")
    out = frontier.register_seeds(
        [("j", "k0", "http://x/0"), ("j", "k1", "http://x/1"), ("j", "k0", "http://x/0")]
    )
    assert out[2] is None
    assert out[0] is not None and out[1] is not None
    (id0, queued0), (id1, queued1) = out[0], out[1]
    assert isinstance(id0, int) and isinstance(id1, int) and id0 != id1
    assert queued0 is False and queued1 is False
    assert frontier.register_seeds([("j", "k1", "http://x/1")]) == [None]
    assert frontier.url_of(id0) == "http://x/0"
    assert read_all(frontier) == []  # seeds come from the job's list, not the queue

    # Another process (a resume) registers the same seeds again: its own claim.
    assert store.frontier("claim-2").register_seeds([("j", "k0", "http://x/0")]) == [(id0, False)]


def test_a_seed_that_was_queued_as_a_link_leaves_the_queue(tmp_path, store_factory):
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    frontier = store.frontier("claim-1")
    assert frontier.add([link("k5")], limit=10) == 1
    [queued_row] = frontier.read(0, 10)
    assert frontier.register_seeds([("j", "k5", "http://x/k5")]) == [(queued_row.id, True)]
    assert frontier.read(0, 10) == []


def test_links_are_queued_once_and_read_in_order_once(tmp_path, store_factory):
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    frontier = store.frontier("claim-1")
    [(seed, _)] = frontier.register_seeds([("j", "k0", "http://x/0")])
    rows = [link(f"k{n}", origin=seed) for n in range(1, 11)]
    assert frontier.add([*rows, rows[0]], limit=100) == 10  # same key twice: queued once
    assert frontier.add(rows, limit=100) == 0
    assert frontier.add([link("k1", depth=5)], limit=100) == 0

    read = read_all(frontier, page=3)
    assert [row.key for row in read] == [f"k{n}" for n in range(1, 11)]
    assert [row.id for row in read] == sorted({row.id for row in read})
    first = read[0]
    assert (first.job, first.url, first.depth, first.referrer, first.origin) == (
        "j",
        "http://x/k1",
        1,
        "http://x/",
        seed,
    )
    assert frontier.read(read[-1].id, 10) == []
    assert frontier.url_of(first.id) == "http://x/k1"
    assert frontier.url_of(10**9) is None
    assert frontier.counts_by_job() == ({"j": 10}, {})


def test_add_respects_the_limit(tmp_path, store_factory):
    """max_pages: no more than ``limit`` new rows are queued; the rest can come later."""
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    frontier = store.frontier("claim-1")
    rows = [link(f"k{n}") for n in range(5)]
    assert frontier.add(rows, limit=2) == 2
    assert [row.key for row in read_all(frontier)] == ["k0", "k1"]
    assert frontier.add(rows, limit=0) == 0
    assert frontier.add(rows, limit=100) == 3
    assert [row.key for row in read_all(frontier)] == ["k0", "k1", "k2", "k3", "k4"]


def test_finished_rows_are_not_read_again(tmp_path, store_factory):
    """A resumed crawl does not fetch a page its run already finished."""
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    frontier = store.frontier("claim-1")
    frontier.add([link("k1"), link("k2"), link("k3")], limit=10)
    store.add_done(ok_row("k2"))
    store.flush(0)
    assert [row.key for row in read_all(frontier)] == ["k1", "k3"]


def test_seen_urls_are_not_queued(tmp_path, store_factory):
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    frontier = store.frontier("claim-1")
    frontier.see("j", "k1", "http://x/k1")  # a redirect led here
    assert frontier.add([link("k1")], limit=10) == 0
    assert read_all(frontier) == []


def test_blocked_urls_are_counted_and_never_read(tmp_path, store_factory):
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    frontier = store.frontier("claim-1")
    frontier.register_seeds([("j", "s", "http://x/s")])
    assert frontier.add([link("k1"), link("k2"), link("k3")], limit=10) == 3
    assert frontier.add([link("d1"), link("d2")], limit=10, blocked="disallowed") == 2
    assert frontier.block("k2", "unavailable") is True  # it was queued
    assert frontier.block("k2", "unavailable") is False  # already blocked
    assert frontier.block("s", "disallowed") is False  # a seed is not queued
    assert frontier.block("nowhere", "disallowed") is False

    assert [row.key for row in read_all(frontier)] == ["k1", "k3"]
    assert frontier.blocked() == {"disallowed": 3, "unavailable": 1}
    assert frontier.counts_by_job() == ({"j": 2}, {"j": 3})
    assert frontier.add([link("d1")], limit=10) == 0  # blocked is seen


def test_by_depth_counts_finished_pages(tmp_path, store_factory):
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    frontier = store.frontier("claim-1")
    frontier.register_seeds([("j", "s", "http://x/s")])
    frontier.add([link("a", 1), link("b", 1), link("c", 2), link("d", 2)], limit=10)
    store.add_done(ok_row("s"))
    store.add_done(ok_row("a"))
    store.add_done(failed_row("b"))
    store.add_done(ok_row("c"))
    store.flush(0)
    assert frontier.by_depth() == {"0": 1, "1": 2, "2": 1}


def test_forget_other_runs_drops_their_rows_only(tmp_path, store_factory):
    store = store_factory(tmp_path)
    store.start_run("run-1", T1)
    old = store.frontier("claim-1")
    old.add([link("o1"), link("o2")], limit=10)
    [old_row, _] = old.read(0, 10)
    store.finish_run(T2, 0)

    store.start_run("run-2", T2)
    frontier = store.frontier("claim-2")
    assert read_all(frontier) == []  # another run's rows are not this run's queue
    assert frontier.add([link("o1"), link("n1")], limit=10) == 2
    assert old.url_of(old_row.id) == "http://x/o1"
    frontier.forget_other_runs()
    assert frontier.url_of(old_row.id) is None
    assert [row.key for row in read_all(frontier)] == ["o1", "n1"]

    store.resume_run("run-1")
    assert read_all(store.frontier("claim-3")) == []


_FRONTIER_CHILD = """
    import sys, time
    from pathlib import Path
    from tests.state.test_store_contract import open_store

    store = open_store(int(sys.argv[1]), Path(sys.argv[2]))
    store.start_run("run-1", "2024-01-01T00:00:00.000Z")
    frontier = store.frontier("child")
    frontier.register_seeds([("j", "s", "http://x/s")])
    frontier.add([("j", f"k{n}", f"http://x/k{n}", 1, "http://x/s", None) for n in range(5)], 100)
    frontier.add([("j", "d", "http://x/d", 1, None, None)], 100, blocked="disallowed")
    frontier.block("k4", "unavailable")
    print("ready", flush=True)
    time.sleep(120)
"""


def test_frontier_writes_survive_a_kill(tmp_path, store_factory):
    """A page's links are stored before its manifest line: a crash never loses them."""
    run_until_killed(_FRONTIER_CHILD, str(store_factory.index), str(tmp_path))

    store = store_factory(tmp_path)
    assert store.unfinished_run() == "run-1"
    store.resume_run("run-1")
    frontier = store.frontier("parent")
    assert [(row.key, row.url) for row in read_all(frontier)] == [
        (f"k{n}", f"http://x/k{n}") for n in range(4)
    ]
    assert frontier.blocked() == {"disallowed": 1, "unavailable": 1}
    [registered] = frontier.register_seeds([("j", "s", "http://x/s")])
    assert registered is not None and registered[1] is False


# --- recovery from a torn manifest tail -------------------------------------------------


def manifest_line(out: Path, run: str, key: str, body: bytes | None, on_disk: bytes | None):
    """The manifest line of a request whose body was ``body``; ``on_disk`` is what its file
    holds now (None: no file). ``body`` None: a failure, no file."""
    path = f"j/{key}.txt" if body is not None else None
    if path is not None and on_disk is not None:
        (out / "j").mkdir(parents=True, exist_ok=True)
        (out / path).write_bytes(on_disk)
    return Record(
        run=run,
        job="j",
        method="GET",
        url=f"http://x/{key}",
        final_url=f"http://x/{key}" if body is not None else None,
        status=200 if body is not None else 404,
        ok=body is not None,
        path=path,
        bytes=len(body) if body is not None else None,
        sha256=hashlib.sha256(body).hexdigest() if body is not None else None,
        content_type="text/plain" if body is not None else None,
        charset="utf-8" if body is not None else None,
        elapsed_ms=1.5,
        attempts=1,
        error=None if body is not None else {"kind": "http", "message": "HTTP 404"},
        fetched_at=T1,
        key=key,
    ).to_line()


def torn_manifest(out: Path, tail_kind: str) -> tuple[Path, list[bytes], bytes]:
    """A manifest of run r1 as a crash leaves it: (path, whole lines, torn tail)."""
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        manifest_line(out, "r1", "k0", b"zero", b"zero"),  # covered by the last commit
        manifest_line(out, "r1", "k1", b"one", b"one"),
        manifest_line(out, "r0", "other", b"other", b"other"),  # an earlier run's line
        manifest_line(out, "r1", "k2", None, None),  # a failure: no file to check
        manifest_line(out, "r1", "k3", b"three", b"THREE"),  # the data did not reach disk
        manifest_line(out, "r1", "k4", b"four", None),  # the file is missing
        manifest_line(out, "r1", "k5", b"five", b"five"),
    ]
    last = manifest_line(out, "r1", "k6", b"six", b"six")
    tail = {
        "half": last[: len(last) // 2],
        "no-newline": last[:-1],
        "zeros": b"\0" * 64,
        "garbage-line": b'{"run":"r1","key":\n',
    }[tail_kind]
    path = out / "manifest.jsonl"
    path.write_bytes(b"".join(lines) + tail)
    return path, lines, tail


@pytest.mark.parametrize("tail_kind", ["half", "no-newline", "zeros", "garbage-line"])
def test_replay_tail_keeps_the_lines_whose_files_match_and_cuts_the_torn_tail(tmp_path, tail_kind):
    out = tmp_path / "out"
    path, lines, _ = torn_manifest(out, tail_kind)
    good_end = sum(len(line) for line in lines)

    records, end = replay_tail(path, len(lines[0]), "r1")

    assert [record["key"] for record in records] == ["k1", "k2", "k5"]
    assert end == good_end
    assert path.stat().st_size == good_end
    assert path.read_bytes() == b"".join(lines)  # the earlier run's line is kept
    # Running it again (a second crash before the commit) finds the same and cuts nothing.
    again, end_again = replay_tail(path, len(lines[0]), "r1")
    assert [record["key"] for record in again] == ["k1", "k2", "k5"]
    assert end_again == good_end


def test_replay_tail_of_a_missing_manifest_is_empty(tmp_path):
    assert replay_tail(tmp_path / "manifest.jsonl", 0, "r1") == ([], 0)


def test_recovery_marks_the_replayed_requests_done(tmp_path, store_factory):
    """A resumed run does not fetch again what the manifest recorded after the last commit,
    and does fetch again what it cannot trust."""
    out = tmp_path / "out"
    path, lines, _ = torn_manifest(out, "half")
    store = store_factory(out)
    store.start_run("r1", T1)
    store.add_done(DoneRow("k0", True, None, 200, 4, 1))
    store.flush(len(lines[0]))
    store.close()

    store = store_factory(out)
    store.resume_run(store.unfinished_run() or "")
    assert replay_into(store, path) == 3
    store.close()

    store = store_factory(out)
    store.resume_run("r1")
    done = {key: store.is_done(key) for key in ("k0", "k1", "k2", "k3", "k4", "k5", "k6", "other")}
    assert done == {
        "k0": True,
        "k1": True,
        "k2": True,
        "k3": False,
        "k4": False,
        "k5": True,
        "k6": False,
        "other": False,
    }
    assert store.committed_manifest_offset() == sum(len(line) for line in lines)
    assert path.read_bytes() == b"".join(lines)
    totals = store.totals()
    assert (totals["requests"], totals["ok"], totals["failed"]) == (4, 3, 1)
    assert totals["by_kind"] == {"http": 1}
    assert totals["bytes"] == len(b"zero") + len(b"one") + len(b"five")
