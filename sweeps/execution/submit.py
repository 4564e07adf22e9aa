"""Run a sweep on a Ray cluster as a Ray Job: submit it, follow its logs, ask its status, stop it.

A thin layer over Ray's job submission API (`ray.job_submission.JobSubmissionClient`) talking to
the head node's job server (the dashboard address, e.g. http://127.0.0.1:8265):

- the working directory is uploaded with the job (the current directory when the sweep file is
  inside it, else the sweep file's directory), without local state such as .venv, .git,
  MLflow stores, results and .env;
- the job's driver runs `sweeps run FILE --address auto`, on the head node: `auto` joins the
  cluster the job runs on (Ray's job supervisor sets RAY_ADDRESS for the driver);
- the tracking URI is the one given here, or else the cluster's own MLFLOW_TRACKING_URI.

Token authentication (RAY_AUTH_MODE=token on the cluster): the token is read from
RAY_AUTH_TOKEN (or the file named by RAY_AUTH_TOKEN_PATH) and sent with every request.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Iterator

# Local state that never belongs in a job's working directory (Ray also honours .gitignore).
EXCLUDES = [
    ".git", ".venv", "venv", ".env", ".hypothesis", ".pytest_cache", ".mypy_cache",
    "**/__pycache__", "*.egg-info", "build", "dist",
    "mlflow.db", "mlflow.db-journal", "mlruns", "mlartifacts", "sweep-results",
]
UNSUCCESSFUL = ("FAILED", "STOPPED")     # Ray JobStatus values a job ends with, not succeeding
TERMINAL = ("SUCCEEDED", *UNSUCCESSFUL)
POLL_SECONDS = 1.0


class SubmitError(Exception):
    """A job could not be submitted, found or reached; the message says why, in one line."""


def submit(file: str | Path, address: str, tracking_uri: str | None = None,
           follow: bool = False, *, working_dir: str | Path | None = None,
           out: IO[str] | None = None, reuse: bool = True) -> str:
    """Submit the sweep in `file` as a Ray Job on the cluster at `address`; return the job id.

    Parameters
    ----------
    file : the sweep file; it must lie inside the uploaded working directory.
    address : the cluster's job server, e.g. "http://127.0.0.1:8265".
    tracking_uri : where the job logs (an MLflow server the cluster reaches); default: the
        cluster's MLFLOW_TRACKING_URI. Local stores (sqlite:, file:) are refused: the job
        would write them on the head node.
    follow : stream the job's logs to `out` until it ends (the job id is returned then).
    working_dir : directory to upload [default: the current directory if it holds `file`,
        else `file`'s directory].
    reuse : the job's `sweeps run` copies variants already FINISHED in the experiment
        instead of training them (False: ``--no-reuse``).
    """
    file = Path(file).resolve()
    if not file.is_file():
        raise SubmitError(f"{file}: no such sweep file")
    root = _working_dir(file, working_dir)
    _check_tracking_uri(tracking_uri)
    command = ["sweeps", "run", file.relative_to(root).as_posix(), "--address", "auto",
               "--no-progress"]
    if not reuse:
        command.append("--no-reuse")
    if tracking_uri:
        command += ["--tracking-uri", tracking_uri]
    entrypoint = " ".join(shlex.quote(arg) for arg in command)
    job_id = _job_id(file)
    with _client(address) as client:
        _call(address, lambda: client.submit_job(
            entrypoint=entrypoint,
            submission_id=job_id,
            runtime_env={"working_dir": str(root), "excludes": list(EXCLUDES)},
            metadata={"sweep_file": file.relative_to(root).as_posix()},
        ))
    if follow:
        out = out or sys.stdout
        print(f"submitted {job_id}; following its logs (Ctrl-C stops following, not the job)",
              file=sys.stderr, flush=True)
        try:
            follow_logs(job_id, address, out=out)
        except KeyboardInterrupt:
            print(f"\nstopped following; the job goes on: sweeps status {job_id} "
                  f"--address {address}", file=sys.stderr)
    return job_id


def status(job_id: str, address: str) -> str:
    """The job's status: PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED."""
    with _client(address) as client:
        return str(_call(address, lambda: client.get_job_status(job_id), job_id))


def stop(job_id: str, address: str) -> str:
    """Ask the cluster to stop the job; returns a one-line account of what happened.

    The driver gets SIGTERM first: `sweeps run` then stops its outstanding tasks and marks
    the sweep's parent run KILLED (finished variants stay logged; running the file again
    continues the sweep).
    """
    with _client(address) as client:
        stopped = _call(address, lambda: client.stop_job(job_id), job_id)
        if stopped:
            return f"{job_id}: stop requested"
        state = _call(address, lambda: client.get_job_status(job_id), job_id)
        return f"{job_id}: not running ({state})"


def follow_logs(job_id: str, address: str, out: IO[str] | None = None) -> str:
    """Write the job's logs to `out` as they come until the job ends; return its final status."""
    out = out or sys.stdout
    with _client(address) as client:
        try:
            asyncio.run(_tail(client, job_id, out))
        except RuntimeError:
            pass   # the log stream closed early (head restarting, proxy timeout): poll instead
        # The stream may end a moment before the status turns terminal; wait for it, and print
        # whatever the stream did not deliver.
        printed = None
        while True:
            state = str(_call(address, lambda: client.get_job_status(job_id), job_id))
            if state in TERMINAL:
                break
            printed = _print_new(client, job_id, out, printed)
            time.sleep(POLL_SECONDS)
        if printed is not None:
            _print_new(client, job_id, out, printed)
        return state


async def _tail(client, job_id: str, out: IO[str]) -> None:
    async for chunk in client.tail_job_logs(job_id):
        out.write(chunk)
        out.flush()


def _print_new(client, job_id: str, out: IO[str], printed: int | None) -> int:
    text = client.get_job_logs(job_id)
    if printed is not None:
        out.write(text[printed:])
        out.flush()
    return len(text)


# ---------------------------------------------------------------------------------------------

def _working_dir(file: Path, working_dir: str | Path | None) -> Path:
    if working_dir is not None:
        root = Path(working_dir).resolve()
        if not file.is_relative_to(root):
            raise SubmitError(f"{file}: not inside the working directory {root}")
        return root
    cwd = Path.cwd().resolve()
    return cwd if file.is_relative_to(cwd) else file.parent


def _check_tracking_uri(uri: str | None) -> None:
    if uri is None:
        return
    scheme = uri.split("://", 1)[0].split(":", 1)[0] if ":" in uri else ""
    if scheme in ("", "file", "sqlite"):
        raise SubmitError(
            f"--tracking-uri {uri}: a local store would be written on the cluster's head node; "
            "give the tracking server the cluster reaches (http://...), or leave it out to use "
            "the cluster's MLFLOW_TRACKING_URI")


def _job_id(file: Path) -> str:
    """A readable, unique submission id: sweeps-<file stem>-<UTC time>-<random>."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", file.stem).strip("-")[:40] or "sweep"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"sweeps-{stem}-{stamp}-{uuid.uuid4().hex[:6]}"


def _auth_headers() -> dict[str, str]:
    """The Ray auth token from RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH, as a request header."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if not token and path:
        try:
            token = Path(path).expanduser().read_text().strip()
        except OSError as error:
            raise SubmitError(f"RAY_AUTH_TOKEN_PATH={path}: {error.strerror}") from None
    return {"Authorization": f"Bearer {token}"} if token else {}


@contextmanager
def _client(address: str) -> Iterator:
    """A JobSubmissionClient for exactly `address`.

    Ray lets RAY_ADDRESS / RAY_API_SERVER_ADDRESS override the address given to the client;
    here the address given wins, so they are hidden while the client resolves it.
    """
    from ray.job_submission import JobSubmissionClient

    hidden = {key: os.environ.pop(key) for key in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
              if key in os.environ}
    try:
        client = _call(address, lambda: JobSubmissionClient(address, headers=_auth_headers()))
    finally:
        os.environ.update(hidden)
    yield client


def _call(address: str, fn, job_id: str | None = None):
    """fn(), with the job API's failures turned into one-line SubmitErrors."""
    from ray.exceptions import AuthenticationError

    try:
        return fn()
    except AuthenticationError:
        raise SubmitError(f"{address}: the cluster refused the auth token; set RAY_AUTH_TOKEN "
                          "to the cluster's token") from None
    except OSError as error:   # ConnectionError, and requests' errors (IOError subclasses)
        raise SubmitError(f"{address}: cannot reach the Ray job server ({error})") from None
    except RuntimeError as error:
        text = str(error)
        if job_id and ("does not exist" in text or "404" in text):
            raise SubmitError(f"{job_id}: no such job on {address}") from None
        raise SubmitError(f"{address}: {text.strip()}") from None
