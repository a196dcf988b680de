"""Fixtures for detector tests (helpers live in detector_builders.py, a unique module name)."""

from __future__ import annotations

import pytest
from detector_builders import snap

from engine.snapshot import Snapshot
from fixtures.paper_chain import FIGURE2


@pytest.fixture()
def paper_snapshot() -> Snapshot:
    """The paper's Figure 2 chain with expected counts for 100 000 journeys."""
    return snap(FIGURE2, journeys=100_000)
