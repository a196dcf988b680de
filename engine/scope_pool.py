"""Run independent jobs on a few threads, never more at once than a size budget allows.

The per-scope estimates (engine.snapshot_estimates) are numpy sorts, gathers and arithmetic over arrays
of millions of entries, which release the GIL: two scopes on two threads take about half the time of
one after the other. Their temporaries grow with the scope's journeys, so the budget (the largest job's
size) keeps the memory peak where the largest scope alone puts it: two scopes run together only when
their sizes add up to no more than that. Each job's result depends on its own inputs alone, so the
results (and their order in the returned dict) do not depend on the scheduling.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

MAX_WORKERS = 2  # more threads would hold more scopes' temporaries at once for little gain on big arrays


def same_members(members: Sequence[tuple[Any, Sequence[int]]]) -> list[tuple[list[int], list[Any]]]:
    """(scope id, its classes) pairs grouped by their classes, in first-seen order: scopes with the same classes
    hold the same journeys (a release window that is a period, a segment every journey shares, one period
    spanning all the data), so each of their estimates, a function of the journeys alone, is computed once."""
    same: dict[tuple[int, ...], list[Any]] = {}
    for sid, classes in members:
        same.setdefault(tuple(classes), []).append(sid)
    return [(list(classes), sids) for classes, sids in same.items()]


def spread(done: Sequence[Any], groups: Sequence[tuple[list[int], list[Any]]]) -> dict[Any, Any]:
    """scope id -> the result of its group (`done[i]` for `groups[i]`); scopes after a group's first get a copy
    of their own, so no payload shares a mutable block with another."""
    return {sid: result if i == 0 else copy.deepcopy(result)
            for result, (_, sids) in zip(done, groups, strict=True) for i, sid in enumerate(sids)}


@dataclass(frozen=True)
class Job:
    key: Any
    size: int
    run: Callable[[], Any]


def run(jobs: Sequence[Job], workers: int | None = None, budget: int | None = None) -> dict[Any, Any]:
    """key -> result of every job, in the jobs' order; largest first, at most `workers` at once, and together
    no larger than `budget` (the largest job by default; a job larger than it runs alone). The first error stops
    the scheduling and is raised here."""
    workers = max(1, min(workers or min(MAX_WORKERS, os.cpu_count() or 1), len(jobs)))
    if workers == 1:
        return {job.key: job.run() for job in jobs}
    pending = sorted(jobs, key=lambda job: -job.size)  # stable: equal sizes keep the given order
    if budget is None:
        budget = pending[0].size if pending else 0
    results: dict[Any, Any] = {}
    errors: list[BaseException] = []
    cond = threading.Condition()
    running = [0]

    def next_job() -> Job | None:
        with cond:
            while pending and not errors:
                fits = next((j for j in pending if running[0] == 0 or running[0] + j.size <= budget), None)
                if fits is not None:
                    pending.remove(fits)
                    running[0] += fits.size
                    return fits
                cond.wait()
            return None

    def worker() -> None:
        while (job := next_job()) is not None:
            try:
                result = job.run()
            except BaseException as exc:  # handed to the caller's thread below
                with cond:
                    errors.append(exc)
            else:
                with cond:
                    results[job.key] = result
            with cond:
                running[0] -= job.size
                cond.notify_all()

    threads = [threading.Thread(target=worker, name=f"scope-{i}", daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return {job.key: results[job.key] for job in jobs}
