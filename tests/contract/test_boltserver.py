"""The test server helper itself: a server that cannot start must fail loudly, with its log, never skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.boltserver import BoltServer, BoltServerError, free_port, port_open


def test_a_server_that_cannot_start_raises_with_the_log_tail(tmp_path: Path) -> None:
    server = BoltServer(tmp_path / "broken", heap="not-a-size")  # the JVM refuses this heap size at once
    with pytest.raises(BoltServerError) as err:
        server.start(timeout=120)
    message = str(err.value)
    assert "exited with code" in message
    assert str(server.data_dir) in message
    assert "log tail:" in message and len(message.split("log tail:")[1].strip()) > 0
    assert server.proc is not None and server.proc.poll() is not None  # nothing left running


def test_password_is_kept_with_the_data_dir(tmp_path: Path) -> None:
    first = BoltServer(tmp_path / "data")
    second = BoltServer(tmp_path / "data")
    assert first.password == second.password != BoltServer(tmp_path / "other").password


def test_free_port_is_closed() -> None:
    assert not port_open(free_port())
