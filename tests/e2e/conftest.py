"""pytest fixtures: a running sluice broker per test, stopped (and checked) afterwards.

A failing test's report carries the tail of the log of every broker it started, so a
failure explains itself without re-running. At teardown every broker must stop cleanly on
SIGTERM (or have been killed by the test on purpose) and must not have logged a panic, so a
broker bug that the clients' retries papered over still fails the test.
"""

import itertools
import re
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from broker import Broker  # noqa: E402
from clients import CLIENTS  # noqa: E402

LOG_TAIL_LINES = 60


def log_tail(b: Broker, lines: int = LOG_TAIL_LINES) -> str:
    plain = re.sub(r"\x1b\[[0-9;]*m", "", b.log())  # the broker colours its log lines
    return "\n".join(plain.splitlines()[-lines:])


def pytest_configure(config):
    # kafka-python loads its protocol schemas with a deprecated importlib.resources call.
    config.addinivalue_line("filterwarnings",
                            "ignore::DeprecationWarning:kafka.protocol.schemas.load_json")
    config.addinivalue_line("filterwarnings", "ignore:open_text is deprecated:DeprecationWarning")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for b in getattr(item, "sluice_brokers", []):
            report.sections.append((f"sluice log tail ({b.bootstrap}, {b.data_dir})", log_tail(b)))


@pytest.fixture
def make_broker(request, tmp_path):
    """Starts brokers on fresh data dirs (or a given one); all are stopped at teardown."""
    started: list[Broker] = []
    request.node.sluice_brokers = started
    n = itertools.count()

    def make(env: dict | None = None, data_dir: Path | None = None, port: int | None = None,
             args: list[str] | None = None) -> Broker:
        i = next(n)
        b = Broker(data_dir or tmp_path / ("data" if i == 0 else f"data{i}"), port=port, env=env,
                   args=args)
        started.append(b)
        return b.start()

    yield make
    problems = []
    for b in started:
        running = b.proc is not None and b.proc.poll() is None
        code = b.stop()
        if running and code != 0:
            problems.append(f"{b.bootstrap} exited with {code} on SIGTERM")
        elif not running and code not in (0, -signal.SIGKILL):
            problems.append(f"{b.bootstrap} had exited on its own with {code}")
        if "panicked at" in b.log():
            problems.append(f"{b.bootstrap} logged a panic")
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def broker(make_broker):
    return make_broker()


@pytest.fixture(params=CLIENTS, ids=lambda c: c.name)
def client(request):
    """Each Python Kafka client in turn (see clients.py)."""
    return request.param


@pytest.fixture
def topic(request) -> str:
    """A topic name unique to the test (parametrisation included)."""
    name = request.node.name.replace("[", ".").replace("]", "").replace("/", "_")
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:200]
