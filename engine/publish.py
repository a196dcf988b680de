"""Publishing a run: build privately, then switch one pointer (docs/contracts.md, "Publishing").

A run takes the workspace's run lock (`<ws>/run.lock`, one writer at a time), copies the
published database file `<ws>/journeygraph.duckdb` to `<ws>/.build/<token>/` and writes
everything there. Publishing checkpoints and closes that copy, fsyncs it, renames it over the
published file and fsyncs the folder: that rename is the one switch that makes the run's
events, journeys, snapshots, findings, insights and feed visible together. A run that dies
before it leaves the published file untouched; the next run removes its leftovers.

Readers open the published file read-only (engine.workspace.Workspace.read) and never take
the run lock: one that opened before a rename goes on reading the old file, whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ontology.errors import WorkspaceBusy

log = logging.getLogger(__name__)

RUN_LOCK = "run.lock"
BUILD_DIR = ".build"
FAILPOINT_ENV = "JOURNEYGRAPH_FAILPOINT"  # fault injection for the crash tests: stop at this stage boundary


@contextlib.contextmanager
def exclusive(path: Path, wait_s: float, busy: str) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if missing), waiting up to `wait_s`; else WorkspaceBusy(busy).

    flock belongs to the open file, so the kernel drops it when the holder exits or is killed: a
    lock is never left behind by a crash, and two threads of one process exclude each other too.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline, pause = time.monotonic() + wait_s, 0.02
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() + pause >= deadline:
                    raise WorkspaceBusy(busy) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.5)
        yield
    finally:
        os.close(fd)  # releases the lock


def run_lock(root: Path, wait_s: float) -> contextlib.AbstractContextManager[None]:
    """The one-writer lock of a workspace (a run, or watch's run)."""
    return exclusive(root / RUN_LOCK, wait_s, "another journeygraph run is writing this workspace and did not "
                     f"finish within {wait_s:g} s; retry when it has finished")


def run_active(root: Path) -> bool:
    """Whether a run holds the workspace's run lock now (a shared probe that never waits)."""
    try:
        fd = os.open(root / RUN_LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def new_build(root: Path, published: Path) -> Path:
    """A private copy of the published database (an empty folder when there is none yet): the run's file.

    Call under the run lock: every build folder still there belongs to a run that died, so they go.
    The copy carries everything history needs (snapshots, findings, insights, runs, state_metrics,
    quarantine, and whatever a later version adds) without a list of tables to keep up to date.
    """
    builds = root / BUILD_DIR
    if builds.exists():
        shutil.rmtree(builds)
    folder = builds / secrets.token_hex(8)
    folder.mkdir(parents=True)
    target = folder / published.name
    if published.exists():
        started = time.perf_counter()
        shutil.copyfile(published, target)
        log.info("publish: copied %d bytes to the build in %.3f s", target.stat().st_size, time.perf_counter() - started)
    return target


def publish(build: Path, published: Path) -> None:
    """Switch the pointer: the closed, checkpointed build file replaces the published one, durably.

    The build connection must be closed first (DuckDB checkpoints on close and leaves no .wal).
    """
    wal = build.with_name(build.name + ".wal")
    if wal.exists():
        raise RuntimeError("the build database still has a write-ahead log; checkpoint and close it before publishing")
    started = time.perf_counter()
    _fsync(build)
    failpoint("publish")
    os.replace(build, published)
    _fsync(published.parent)
    log.info("publish: fsync and rename of %d bytes in %.3f s", published.stat().st_size, time.perf_counter() - started)
    failpoint("published")
    shutil.rmtree(build.parent.parent, ignore_errors=True)  # .build: under the run lock, only this run's


def discard(build: Path) -> None:
    """Drop a build that will not be published (the run failed); the published file is untouched."""
    shutil.rmtree(build.parent.parent, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def failpoint(stage: str) -> None:
    """With JOURNEYGRAPH_FAILPOINT=<stage>: say so on stderr and wait to be killed (the crash tests' hook).

    Deterministic: the test kills the run at exactly this boundary, without timing.
    """
    if os.environ.get(FAILPOINT_ENV) != stage:
        return
    sys.stderr.write(f"failpoint {stage}: waiting to be killed\n")
    sys.stderr.flush()
    while True:
        time.sleep(3600)
