"""engine.sealed_scopes.step_digests: the in-place digest equals the plain expression it replaced, bit for bit
(the digests feed every sealed key a stored snapshot is found by)."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pytest

from engine.sealed_scopes import step_digests
from engine.step_arrays import NULL_TS, StepArrays


def _h64(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def _mix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _reference(steps: StepArrays, wanted: np.ndarray | None) -> np.ndarray:
    """The digest as first written (engine.sealed_scopes before the in-place rewrite)."""
    out = np.zeros(steps.size, dtype=np.uint64)
    at = np.flatnonzero(wanted[steps.jix]) if wanted is not None else np.arange(len(steps.jix))
    if not len(at):
        return out
    jix, state, ts = steps.jix[at], steps.state[at], steps.ts[at]
    name_h = np.array([_h64(str(n)) for n in steps.names.to_pylist()] + [_h64("\x00null")], dtype=np.uint64)
    new = np.ones(len(jix), dtype=bool)
    new[1:] = jix[1:] != jix[:-1]
    starts = np.flatnonzero(new)
    place = np.arange(len(jix)) - np.repeat(starts, np.diff(np.append(starts, len(jix))))
    with np.errstate(over="ignore"):
        x = name_h[state] ^ _mix(ts.view(np.uint64)) ^ _mix(place.astype(np.uint64) + np.uint64(1))
        out[jix[starts]] = np.add.reduceat(_mix(x), starts)
    return out


def _steps(rng: np.random.Generator, journeys: int) -> StepArrays:
    lens = rng.integers(1, 9, journeys)
    jix = np.repeat(rng.permutation(journeys * 2)[:journeys], lens)  # runs of jix in no particular order, gaps
    state = rng.integers(-1, 4, len(jix))  # -1: a NULL state
    ts = rng.integers(0, 10 ** 15, len(jix))
    ts[rng.random(len(jix)) < 0.05] = NULL_TS
    return StepArrays(jix=jix, state=state, names=pa.array(["a", "b", "c", "d"]), ts=ts, size=journeys * 2,
                      journey_ids=pa.array([None] * (journeys * 2), pa.string()))


@pytest.mark.parametrize("share", [None, 1.0, 0.9, 0.2, 0.0], ids=["all", "every", "most", "few", "none"])
def test_digests_match_the_plain_expression(share) -> None:
    rng = np.random.default_rng(11)
    steps = _steps(rng, 400)
    wanted = None if share is None else rng.random(steps.size) < share
    got = step_digests(steps, wanted)
    assert np.array_equal(got, _reference(steps, wanted))
    if share != 0.0:
        assert (got != 0).sum() > 0


def test_no_steps_no_digests() -> None:
    steps = StepArrays(jix=np.zeros(0, np.int64), state=np.zeros(0, np.int64), names=pa.array([], pa.string()),
                       ts=np.zeros(0, np.int64), size=3, journey_ids=pa.array([None] * 3, pa.string()))
    assert step_digests(steps).tolist() == [0, 0, 0]
