"""Starts and stops the real `sluice` binary for end-to-end tests.

The binary is $SLUICE_BIN (tests/run sets it); each broker listens on a free loopback port
and keeps its data in a directory the test owns, so tests can restart it on the same data
or look at the files it wrote.
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def sluice_bin() -> str:
    # tests/run's default CARGO_TARGET_DIR is ~/.cache/sluice-target.
    target = os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache" / "sluice-target"
    path = os.environ.get("SLUICE_BIN") or str(Path(target) / "debug" / "sluice")
    if not Path(path).exists():
        raise RuntimeError(f"sluice binary not found at {path}: run tests/run or cargo build")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One sluice process. `start()` waits until it accepts connections."""

    def __init__(self, data_dir: Path, port: int | None = None, env: dict | None = None,
                 args: list[str] | None = None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.env = env or {}
        self.args = args or []
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir.parent / f"sluice-{self.port}.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "Broker":
        env = {**os.environ, "RUST_BACKTRACE": "1", **self.env}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sluice_bin(), "serve", "--listen", self.bootstrap, "--data-dir", str(self.data_dir),
             *self.args],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.data_dir.parent,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sluice exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sluice did not listen on {self.bootstrap}:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Sends `sig` and waits; returns the exit code (negative for a kill signal)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"sluice did not stop on {sig}:\n{self.log()}")

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)
