"""Server starts in tests wait on readiness with a generous limit (issue 18 #10): load delays them, it must not fail them."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
from pathlib import Path

import pytest
import uvicorn

from tests.e2e.conftest import SERVER_START_S, LiveServer


def test_a_slow_start_is_waited_for_until_the_server_answers(demo_workspace: Path, monkeypatch) -> None:
    startup = uvicorn.Server.startup

    async def slow_startup(self, sockets=None) -> None:  # type: ignore[no-untyped-def]
        await asyncio.sleep(25)  # longer than the 20 s the suite used to allow
        await startup(self, sockets)

    monkeypatch.setattr(uvicorn.Server, "startup", slow_startup)
    with LiveServer(demo_workspace) as server, urllib.request.urlopen(server.url + "/health", timeout=30) as res:
        assert res.status == 200  # ready means answering


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # uvicorn exits its thread
def test_a_server_that_cannot_start_fails_fast(demo_workspace: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = LiveServer(demo_workspace)
        server.port = taken.getsockname()[1]
        server.server.config.port = server.port
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="stopped before it was ready"):
            server.__enter__()
    assert time.monotonic() - started < SERVER_START_S / 2
