"""`sweeps ui`: the MLflow UI on a sweep's tracking store, bound to 127.0.0.1.

`serve` blocks until Ctrl-C; `start` returns a handle (used by tests and scripts) whose
`stop()` ends the server and its workers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from sweeps.tracking.store import default_tracking_uri

HOST = "127.0.0.1"


@dataclass
class UiServer:
    """A running `mlflow server` process (its own process group)."""

    process: subprocess.Popen
    url: str
    tracking_uri: str
    log_path: Path | None = None
    temporary_log: bool = False

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the server's process group, SIGKILL what is left after `timeout`."""
        if self.process.poll() is None:
            self._terminate(timeout)
        if self.temporary_log and self.log_path is not None and self.process.returncode in (
                0, -signal.SIGTERM):
            self.log_path.unlink(missing_ok=True)

    def _terminate(self, timeout: float) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()

    def __enter__(self) -> "UiServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def port_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on host:port now (as servers do, with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def start(tracking_uri: str | None = None, port: int = 5000, *, timeout: float = 120.0,
          log_path: str | Path | None = None) -> UiServer:
    """Start `mlflow server` on the store, bound to 127.0.0.1:port; return once it answers.

    Its output goes to `log_path` (default: a temporary file, named in errors);
    ``log_path="-"`` lets it print to this terminal.
    """
    uri = tracking_uri or default_tracking_uri()
    if not port_free(port):
        raise OSError(f"port {port} on {HOST} is in use; choose another with --port")
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
               "--host", HOST, "--port", str(port), "--workers", "1"]
    if log_path == "-":
        out, path = None, None
    else:
        if log_path:
            path = Path(log_path)
        else:
            fd, name = tempfile.mkstemp(prefix="sweeps-ui-", suffix=".log")
            os.close(fd)
            path = Path(name)
        out = open(path, "ab")
    try:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT if out else None,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        if out is not None:
            out.close()
    server = UiServer(process, f"http://{HOST}:{port}", uri, path, temporary_log=not log_path)
    deadline = time.monotonic() + timeout
    try:
        while not _healthy(server.url):
            if process.poll() is not None:
                tail = _tail(path)
                raise RuntimeError(f"mlflow server exited with status {process.returncode}"
                                   + (f"; its log ({path}):\n{tail}" if tail else ""))
            if time.monotonic() > deadline:
                raise TimeoutError(f"mlflow server did not answer on {server.url} within "
                                   f"{timeout:.0f} s; log: {path}")
            time.sleep(0.2)   # poll interval while waiting for the health endpoint
    except BaseException:     # Ctrl-C included: never leave the server running
        server.temporary_log = False          # keep the log the error points to
        server.stop()
        raise
    return server


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _tail(path: Path | None, lines: int = 20) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def serve(tracking_uri: str | None = None, port: int = 5000) -> None:
    """Run the MLflow UI on the store until Ctrl-C, printing its address.

    A tracking server URI (http/https) already serves the UI: its address is printed.
    """
    uri = tracking_uri or default_tracking_uri()
    if uri.startswith(("http://", "https://")):
        print(f"MLflow UI: {uri}  (the tracking server serves it)")
        return
    print(f"Starting the MLflow UI on {uri} ...", flush=True)
    try:
        server = start(uri, port, log_path="-")
    except KeyboardInterrupt:
        return
    print(f"MLflow UI: {server.url}  (store {uri}; Ctrl-C stops)", flush=True)
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
