"""`sweeps ui`: the MLflow UI on a sweep's tracking store, bound to loopback, opened on the runs.

MLflow 3 opens an experiment on its GenAI "Overview" page (traces, an assistant), where no
run is listed; `runs_url` is the address of the experiment's runs table (each sweep's parent
run with its variants nested under it), and it is what `sweeps ui` and `sweeps run` print.

The rule this file keeps: no `mlflow server` outlives the `sweeps ui` that started it. The
server runs in its own process group (a Ctrl-C in the terminal reaches `sweeps ui` alone, which
then stops it), and Ctrl-C, SIGTERM and SIGHUP all end the same way: the whole group is
terminated, waited for with a deadline, then killed. `start` returns a handle (tests, scripts)
whose `stop()` does the same.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from sweeps.tracking.contract import ROLE, RunRole
from sweeps.tracking.store import (check_tracking_server, default_tracking_uri, make_client,
                                   search_all)

DEFAULT_PORT = 5000
# MLflow 3.17's UI opens its Assistant panel (a third of the window) on the first visit of
# any page whose host name is localhost, 127.0.0.1 or ::1 (its `isLocalServer`; no URL
# parameter or server setting turns that off). Another loopback address is not "local" to
# it: the UI is served on 127.0.0.2 where the system has it (Linux: all of 127/8), else on
# 127.0.0.1, and told to accept that host and origin.
PREFERRED_HOST, FALLBACK_HOST = "127.0.0.2", "127.0.0.1"


def _loopback_host() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((PREFERRED_HOST, 0))
        except OSError:
            return FALLBACK_HOST
    return PREFERRED_HOST


HOST = _loopback_host()

# The UI only reads runs: MLflow's GenAI job runner (a runner and 7 huey consumers, ~0.5 GB)
# is not needed, and starting it makes the server take about twice as long to answer.
SERVER_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def runs_url(base_url: str, experiment_id: str) -> str:
    """The experiment's runs table in the MLflow UI at `base_url` (not its GenAI overview)."""
    return (f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs"
            "?workflowType=machine_learning")


# The configurations view. MLflow 3.17's runs page reads a "shared view" (filter, order,
# columns) from the experiment tag ``mlflow.sharedViewState.<key>`` named by the URL's
# ``viewStateShareKey`` (its JS bundle: `useSharedExperimentViewState`); only the filter,
# order and a few dates can be URL parameters themselves, not the columns.
SHARED_VIEW_TAG = "mlflow.sharedViewState."
NAME_COLUMN = "attributes.`Run Name`"


def view_key(sweep_run_id: str, group_key: str | None = None) -> str:
    """The shared-view key of one sweep run's configurations (of one configuration's seeds)."""
    return f"sweeps-{sweep_run_id}" + (f"-{group_key}" if group_key else "")


def _view(search_filter: str, metric: str, ascending: bool, columns: list[str]) -> str:
    return json.dumps({"searchFilter": search_filter, "orderByKey": f"metrics.`{metric}`",
                       "orderByAsc": ascending, "selectedColumns": columns,
                       "runsHiddenMode": "SHOW_ALL",
                       # the grid's column ids; names in full ("lr=0.1 hidden=16 init=he_...")
                       "columnOrder": [NAME_COLUMN], "columnWidths": {NAME_COLUMN: 300}})


def configurations_view(sweep_run_id: str, metric: str, ascending: bool,
                        settings: list[str]) -> str:
    """The shared view (JSON) of a sweep run's configuration runs: those runs only, best
    first by `metric`, with the metric, its spread, the seed count, the swept settings
    (`settings`, without the seed) and the tie mark as the only columns."""
    from sweeps.tracking.groups import group_filter
    from sweeps.tracking.contract import TIED

    return _view(group_filter(sweep_run_id), metric, ascending,
                 [f"metrics.`{key}`" for key in (metric, f"{metric}_std", "n")]
                 + [f"params.`{path}`" for path in settings] + [f"tags.`{TIED}`"])


def seeds_view(sweep_run_id: str, group_key: str, metric: str, ascending: bool) -> str:
    """The shared view (JSON) of one configuration's seeds: its variants in the sweep run,
    best first by `metric`, with the metric, the seed and the status as columns."""
    from sweeps.tracking.contract import GROUP_KEY, PARENT_ID, STATUS

    return _view(f"tags.`{PARENT_ID}` = '{sweep_run_id}' and "
                 f"tags.`{GROUP_KEY}` = '{group_key}'", metric, ascending,
                 [f"metrics.`{metric}`", "params.`seed`", f"tags.`{STATUS}`"])


def configurations_url(base_url: str, experiment_id: str, sweep_run_id: str) -> str:
    """The runs page on a sweep run's configurations (`configurations_view`)."""
    return f"{runs_url(base_url, experiment_id)}&viewStateShareKey={view_key(sweep_run_id)}"


def seeds_link(experiment_id: str, sweep_run_id: str, group_key: str) -> str:
    """The runs page on one configuration's seeds (`seeds_view`), as a link from a page of
    the UI (relative: the UI may be served at any address)."""
    return (f"#/experiments/{experiment_id}/runs?workflowType=machine_learning"
            f"&viewStateShareKey={view_key(sweep_run_id, group_key)}")


def sweep_url(base_url: str, experiment_id: str, sweep_run_id: str | None,
              view_tags: Mapping[str, str]) -> str:
    """The configurations of the sweep run when the experiment has their view (sweeps
    written since configuration runs exist), else the experiment's runs."""
    if sweep_run_id and SHARED_VIEW_TAG + view_key(sweep_run_id) in view_tags:
        return configurations_url(base_url, experiment_id, sweep_run_id)
    return runs_url(base_url, experiment_id)


def open_hint(tracking_uri: str, experiment_id: str, sweep_file: str | Path,
              sweep_run_id: str | None = None) -> str:
    """How to see a sweep's runs: a tracking server's own page, else the `sweeps ui` to start.
    With `sweep_run_id`: its configurations (`configurations_url`)."""
    base = tracking_uri if tracking_uri.startswith(("http://", "https://")) else \
        f"http://{HOST}:{DEFAULT_PORT}"
    url = configurations_url(base, experiment_id, sweep_run_id) if sweep_run_id else \
        runs_url(base, experiment_id)
    if tracking_uri.startswith(("http://", "https://")):
        return url
    command = f"sweeps ui {sweep_file}"
    if tracking_uri != default_tracking_uri():
        command += f" --tracking-uri {tracking_uri}"
    return f"run `{command}`, then open {url}"


def find_experiment(tracking_uri: str | None = None, name: str | None = None) -> str:
    """The id of experiment `name`, or (no name) of the one whose sweep started last.

    Raises LookupError naming what is missing: the store, the experiment, any sweep;
    ConnectionError when a tracking server does not answer.
    """
    uri = tracking_uri or default_tracking_uri()
    check_tracking_server(uri)
    client = make_client(uri, create=False)
    if name is not None:
        experiment = client.get_experiment_by_name(name)
        if experiment is None or experiment.lifecycle_stage != "active":
            state = "no" if experiment is None else "only a deleted"
            raise LookupError(f"{state} MLflow experiment named {name!r} in {uri}")
        return experiment.experiment_id
    experiment_ids = _active_experiment_ids(client)
    newest = search_all(client, experiment_ids, f"tags.`{ROLE}` = '{RunRole.PARENT}'",
                        ["attributes.start_time DESC"], max_results=1) if experiment_ids else []
    if not newest:
        raise LookupError(f"no sweep in {uri} yet: run `sweeps run FILE` first, or name the "
                          f"experiment (`sweeps ui FILE`, `--experiment NAME`)")
    return newest[0].info.experiment_id


def sweep_page(tracking_uri: str, experiment_id: str, base_url: str) -> str:
    """The page `sweeps ui` opens: the newest sweep run's configurations (`sweep_url`)."""
    from sweeps.tracking.readback import find_parent

    client = make_client(tracking_uri, create=False)
    parent = find_parent(client, experiment_id)
    return sweep_url(base_url, experiment_id, parent.info.run_id if parent else None,
                     client.get_experiment(experiment_id).tags)


def _active_experiment_ids(client) -> list[str]:
    ids: list[str] = []
    token = None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        ids.extend(experiment.experiment_id for experiment in page)
        token = page.token
        if not token:
            return ids


@dataclass
class UiServer:
    """A running `mlflow server` process, leader of its own process group."""

    process: subprocess.Popen
    url: str
    tracking_uri: str
    log_path: Path | None = None
    temporary_log: bool = False

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the server's process group, SIGKILL what is left after `timeout`.

        Returns once no process of the group is left (the port is then free).
        """
        _stop_group(self.process, timeout)
        if self.temporary_log and self.log_path is not None and self.process.returncode in (
                0, -signal.SIGTERM):
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> "UiServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _stop_group(process: subprocess.Popen, timeout: float) -> None:
    group = process.pid                 # started with start_new_session: pgid = its pid
    if not group_alive(group) and process.poll() is not None:
        return
    _signal_group(group, signal.SIGTERM)
    if _wait_group(process, time.monotonic() + timeout):
        return
    _signal_group(group, signal.SIGKILL)
    _wait_group(process, time.monotonic() + 10.0)


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        pass


def _wait_group(process: subprocess.Popen, deadline: float) -> bool:
    """Reap the leader and wait for the rest of its group; False at the deadline."""
    while True:
        process.poll()
        if process.returncode is not None and not group_alive(process.pid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)   # poll interval: group members are not our children to wait on


def group_alive(group: int) -> bool:
    """Whether a live (not zombie) process is left in process group `group`."""
    proc = Path("/proc")
    if not proc.is_dir():            # not Linux: a zombie leader still counts
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:              # it ended while we looked
            continue
        state, _ppid, pgrp = stat[stat.rindex(")") + 2:].split()[:3]
        if int(pgrp) == group and state not in ("Z", "X"):
            return True
    return False


def port_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on host:port now (as servers do, with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def start(tracking_uri: str | None = None, port: int = DEFAULT_PORT, *, timeout: float = 120.0,
          log_path: str | Path | None = None) -> UiServer:
    """Start `mlflow server` on the store, bound to HOST:port; return once it answers.

    Its output goes to `log_path` (default: a temporary file, named in errors);
    ``log_path="-"`` lets it print to this terminal. Interrupted (Ctrl-C, or any exception
    while waiting), it stops the server before passing the exception on.
    """
    uri = tracking_uri or default_tracking_uri()
    if not port_free(port):
        raise OSError(f"port {port} on {HOST} is in use; choose another with --port")
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
               "--host", HOST, "--port", str(port), "--workers", "1",
               "--allowed-hosts", f"{HOST},{HOST}:{port}",
               "--cors-allowed-origins", f"http://{HOST}:{port}"]
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
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   env={**os.environ, **SERVER_ENVIRONMENT})
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
    except BaseException:     # Ctrl-C and stop signals included: never leave the server running
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


class Stopped(BaseException):
    """Raised in `serve` by SIGTERM or SIGHUP, as Ctrl-C raises KeyboardInterrupt."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def _stop_signals() -> Iterator[None]:
    """Turn Ctrl-C, SIGTERM and SIGHUP into exceptions, once: a second one cannot cut the
    server's stop short (the stop has its own deadline). A signal this process inherited as
    ignored (`nohup` for SIGHUP, a background job for SIGINT) stays ignored."""
    def first(signum, _frame):
        for each in STOP_SIGNALS:
            if signal.getsignal(each) is first:
                signal.signal(each, signal.SIG_IGN)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Stopped(signum)

    if threading.current_thread() is not threading.main_thread():
        yield                         # only the main thread receives signals
        return
    previous = {each: signal.getsignal(each) for each in STOP_SIGNALS}
    for each, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(each, first)
    try:
        yield
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)


def serve(tracking_uri: str | None = None, port: int = DEFAULT_PORT,
          experiment: str | None = None) -> None:
    """Run the MLflow UI on the store until Ctrl-C, SIGTERM or SIGHUP; print the runs' address.

    experiment : the experiment to open (default: the one whose sweep started last).
    A tracking server URI (http/https) already serves the UI: its runs address is printed.
    Raises LookupError when the store or the experiment does not exist.
    """
    uri = tracking_uri or default_tracking_uri()
    experiment_id = find_experiment(uri, experiment)
    if uri.startswith(("http://", "https://")):
        print(f"MLflow UI: {sweep_page(uri, experiment_id, uri)}  (the tracking server "
              f"serves it)")
        return
    print(f"Starting the MLflow UI on {uri} ...", flush=True)
    server, ended_by_itself = None, False
    with _stop_signals():
        try:
            server = start(uri, port, log_path="-")
            print(f"MLflow UI: {sweep_page(uri, experiment_id, server.url)}\n"
                  f"  (the sweep's runs; store {uri}; Ctrl-C stops)", flush=True)
            server.process.wait()
            ended_by_itself = True
        except (KeyboardInterrupt, Stopped):
            pass                          # `start` stops the server it was starting
        finally:
            for each in STOP_SIGNALS:     # the stop below has its own deadline
                if signal.getsignal(each) is not signal.SIG_IGN:
                    signal.signal(each, signal.SIG_IGN)
            if server is not None:
                server.stop()
    if ended_by_itself:
        raise RuntimeError(f"mlflow server exited by itself with status "
                           f"{server.process.returncode}")
