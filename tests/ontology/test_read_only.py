"""Read-only opening: readers (threads, other processes) alongside the one writer that holds the store.

The writer is a real child process that keeps its store open and writes when
told to on stdin, so the lock is held by another process for the whole test.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ontology.embedded_store import EmbeddedStore
from ontology.errors import StoreError
from ontology.store import open_store
from tests.ontology.conftest import make_fact, many_facts

FIRST, SECOND = 120, 60

WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from conftest import many_facts
    from ontology.store import open_store

    facts = many_facts({first} + {second})
    store = open_store("embedded", None, sys.argv[1])
    store.write(facts[:{first}])
    print("first", store.count(), flush=True)
    for line in sys.stdin:
        if line.strip() == "second":
            store.write(facts[{first}:])
            print("second", store.count(), flush=True)
        elif line.strip() == "quit":
            break
    store.close()
    print("closed", flush=True)
""")

READER = ("import sys; from ontology.store import open_store; "
          "s = open_store('embedded', None, sys.argv[1], read_only=True); "
          "print(s.count(), len(list(s.facts(entity='outcome:converted')))); s.close()")


def sorted_facts(facts: list[Any]) -> list[Any]:
    return sorted(facts, key=lambda f: f.fact_id)


class Writer:
    """A child process holding the store read-write until told to quit."""

    def __init__(self, workspace: Path) -> None:
        script = workspace / "writer.py"
        script.write_text(WRITER.format(tests=str(Path(__file__).parent), first=FIRST, second=SECOND))
        self.proc = subprocess.Popen([sys.executable, str(script), str(workspace)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def expect(self, word: str) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.split()[:1] == [word], f"writer said {line!r}; stderr: {self.proc.stderr.read() if not line else ''}"
        return line

    def tell(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.tell("quit")
        self.proc.wait(timeout=120)


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Writer]:
    proc = Writer(tmp_path)
    try:
        assert proc.expect("first") == f"first {FIRST}\n"
        yield proc
    finally:
        proc.stop()


def test_reader_process_and_thread_read_while_a_writer_process_holds_the_store(writer: Writer, tmp_path: Path) -> None:
    expected = sorted_facts(many_facts(FIRST + SECOND)[:FIRST])
    with pytest.raises(StoreError, match="holds it"):  # the writer really holds the lock
        open_store("embedded", None, tmp_path)
    with open_store("embedded", None, tmp_path, read_only=True) as reader:
        assert list(reader.facts()) == expected
        converted = [f for f in expected if "outcome:converted" in (f.subject, f.object)]
        done = subprocess.run([sys.executable, "-c", READER, str(tmp_path)], capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == [str(FIRST), str(len(converted))]


def test_reader_sees_a_static_view_until_refresh(writer: Writer, tmp_path: Path) -> None:
    everything = sorted_facts(many_facts(FIRST + SECOND))
    with open_store("embedded", None, tmp_path, read_only=True) as reader:
        assert reader.count() == FIRST
        writer.tell("second")
        assert writer.expect("second") == f"second {FIRST + SECOND}\n"
        assert reader.count() == FIRST  # opened before the second write: does not see it
        reader.refresh()
        assert reader.count() == FIRST + SECOND
        assert list(reader.facts()) == everything
    writer.stop()
    with open_store("embedded", None, tmp_path, read_only=True) as after_close:  # the writer has released the store
        assert list(after_close.facts()) == everything


def test_threads_read_concurrently_while_this_process_writes(tmp_path: Path) -> None:
    facts = many_facts(200)
    entities = sorted({f.subject for f in facts})[:8]
    expected = {e: sorted_facts([f for f in facts if e in (f.subject, f.object)]) for e in entities}
    results: dict[tuple[int, str], list[Any]] = {}
    failures: list[BaseException] = []
    with open_store("embedded", None, tmp_path) as owner:
        owner.write(facts)
        shared = open_store("embedded", None, tmp_path, read_only=True)
        barrier = threading.Barrier(4)

        def read(worker: int) -> None:
            try:
                own = open_store("embedded", None, tmp_path, read_only=True) if worker % 2 else shared
                barrier.wait(timeout=60)
                for entity in entities:
                    results[(worker, entity)] = list(own.facts(entity=entity))
                if own is not shared:
                    own.close()
            except BaseException as exc:  # noqa: BLE001 -- surfaced below: a thread's assertion would otherwise vanish
                failures.append(exc)

        threads = [threading.Thread(target=read, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        shared.close()
    assert failures == []
    assert results == {(w, e): expected[e] for w in range(4) for e in entities}


@pytest.mark.parametrize("action", ["write", "write-empty", "optimize"])
def test_read_only_handle_refuses_writes(tmp_path: Path, action: str) -> None:
    facts = many_facts(10)
    with open_store("embedded", None, tmp_path) as owner:
        owner.write(facts)
        with open_store("embedded", None, tmp_path, read_only=True) as reader:
            with pytest.raises(StoreError, match=r"open read-only; open it with open_store\(\.\.\., read_only=False\)"):
                if action == "optimize":
                    reader.optimize()  # type: ignore[attr-defined]
                else:
                    reader.write([] if action == "write-empty" else [make_fact(lift=9.0)])
            assert reader.count() == 10
        assert owner.count() == 10


def test_read_only_of_a_never_written_workspace_is_empty_and_creates_nothing(tmp_path: Path) -> None:
    with open_store("embedded", None, tmp_path, read_only=True) as reader:
        assert isinstance(reader, EmbeddedStore) and reader.read_only
        assert reader.count() == 0 and list(reader.facts()) == [] and reader.snapshot_ids() == []
    assert not (tmp_path / "facts").exists()


def test_read_only_open_of_a_directory_that_is_not_a_store_says_so(tmp_path: Path) -> None:
    (tmp_path / "facts").mkdir()
    (tmp_path / "facts" / "CURRENT").write_text("garbage\n")
    with pytest.raises(StoreError, match="read-only: .*check the directory is a journeygraph fact store"):
        open_store("embedded", None, tmp_path, read_only=True)
