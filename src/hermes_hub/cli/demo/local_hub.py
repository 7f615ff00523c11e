"""A throwaway hub for the demos: a fresh SQLite database in a folder of the demo's, served by
``hermes serve`` in a child process on a free loopback port, stopped when the demo ends.

A child process rather than a server in this process: the demo's agents and its narration
share this process's event loop, and the hub must be exactly what ``hermes serve`` runs.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from hermes_hub.cli.output import CliError

STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
LOG_TAIL_LINES = 15


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _hermes(*arguments: str) -> list[str]:
    """This installation's ``hermes`` command, whatever the PATH says."""
    return [sys.executable, "-c", "from hermes_hub.cli.main import main; main()", *arguments]


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-LOG_TAIL_LINES:])


def hub_environment(folder: Path, port: int) -> dict[str, str]:
    """The child's environment: this one without any HERMES_ setting that could point it at
    a real database, Redis or secret, plus the demo's own."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("HERMES_")}
    environment.pop("PORT", None)
    url = f"http://127.0.0.1:{port}"
    environment.update(
        {
            "HERMES_ENV": "dev",
            "HERMES_DATA_DIR": str(folder),
            "HERMES_HOST": "127.0.0.1",
            "HERMES_PORT": str(port),
            "HERMES_PUBLIC_URL": url,
            # The demo's agents listen on 127.0.0.1; a hub refuses such endpoints otherwise.
            "HERMES_ALLOW_PRIVATE_ENDPOINTS": "1",
            "HERMES_SANDBOX_PAYMENTS": "true",
            "HERMES_LOG_FORMAT": "console",
            "HERMES_LOG_LEVEL": "warning",
        }
    )
    return environment


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise CliError(
                    f"the demo hub exited with status {process.returncode}:\n{_tail(log)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{url}/readyz").status_code == 200:
                    return
            time.sleep(0.1)
    raise CliError(
        f"the demo hub was not ready within {STARTUP_TIMEOUT_SECONDS:.0f} s:\n{_tail(log)}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def local_hub(folder: Path) -> Iterator[str]:
    """Migrate a new SQLite database in ``folder`` (created) and serve it; yields the hub's
    URL. The folder (database, log, secret) is the caller's to keep or remove."""
    folder.mkdir(parents=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    environment = hub_environment(folder, port)
    log = folder / "hub.log"
    with log.open("wb") as output:
        migrated = subprocess.run(  # noqa: S603 - this installation's hermes, no shell
            _hermes("db", "upgrade"),
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            check=False,
        )
        if migrated.returncode != 0:
            raise CliError(f"could not create the demo database:\n{_tail(log)}")
        process = subprocess.Popen(  # noqa: S603 - as above
            _hermes("serve"), env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        _wait_until_ready(url, process, log)
        yield url
    finally:
        _stop(process)
