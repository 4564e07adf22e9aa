"""The topology of docker-compose.yml as real processes on 127.0.0.1 (no Docker engine needed).

    PostgreSQL  (temp dir, unprivileged user)   <- backend store of
    mlflow server --serve-artifacts             (artifacts in a temp dir)
    ray start --head  (dashboard + job server)  <- joined by
    ray start --address (a second node)

Every process is started in its own session (process group), with SIGINT and SIGTERM at their
default disposition however the test session was started (tests/processes.py), and recorded;
`stop()` ends the processes this module started, and only those: SIGTERM to the leader (`ray
start --block` then shuts its node down), SIGKILL to its group and to the descendants recorded
before, never `ray stop` (which would end every Ray instance of the machine, the test session's
own included). Each leader also gets SIGTERM if the test process dies (PR_SET_PDEATHSIG).
Waits are on conditions (a port answering, a node registered), each with a generous deadline
and the log tail of the process when it fails; a Ray node whose `ray start` gives up while
starting (Ray's own fixed 30 s for its raylet to register) is started again.

Loopback only: every server binds 127.0.0.1. Ray nodes get their own short temp dirs (not
/tmp/ray: `ray.init()` elsewhere never finds this cluster), token authentication with a
random token, and Ray's single-machine switch so their addresses stay 127.0.0.1 (the second
node through ray_node.py, which explains why).
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import ProcessExited, free_port, wait_for
from tests.processes import spawn

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BIN = Path(sys.executable).parent          # the venv's console scripts: ray, mlflow, sweeps
LOOPBACK = "127.0.0.1"
# Ray's own switch for "this cluster lives on one machine": node addresses stay 127.0.0.1.
RAY_LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
# The Ray Client server forks (then execs) one server per client from a process whose gRPC
# threads are busy. With gRPC's fork support on (the default of the grpcio wheels) its fork
# handlers are skipped when other threads are inside gRPC, and the forked child restarts
# gRPC threads before exec and dies of SIGSEGV: "Starting Ray client server failed", more
# often the busier the machine. Off, the child just execs.
GRPC_FORK_ENV = {"GRPC_ENABLE_FORK_SUPPORT": "false"}
START_TIMEOUT = 300.0          # generous: start-ups on a loaded 2-core machine
# Ray 2.60 gives a new node's raylet a fixed 30 s to register with the GCS (ray/_private/node.py,
# no setting): on a loaded machine `ray start` can give up and exit. A node that exits while
# starting is started again, this many times in all.
NODE_START_ATTEMPTS = 3


# ---------------------------------------------------------------------------------------------
# Small tools
# ---------------------------------------------------------------------------------------------

def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process from /proc, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """pid -> start time of every live descendant of `root` (found through /proc)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat:
                children.setdefault(stat[0], []).append(int(entry.name))
                starts[int(entry.name)] = stat[1]
    found, todo = {}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found[child] = starts[child]
                todo.append(child)
    return found


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM this child when the test process dies (even by SIGKILL), so a
    crashed test session does not leave servers behind (`ray start --block`, postgres and
    mlflow each shut down cleanly on SIGTERM). Runs between fork and exec: no imports here."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Proc:
    """One started server process (its own session), its log file, and how to end it."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str],
                 cwd: Path | None = None, user: str | None = None):
        self.name, self.argv, self.log_path = name, argv, log
        self._log = open(log, "ab")
        extra = {}
        if user is not None:
            extra = dict(user=user, group=pwd.getpwnam(user).pw_gid, extra_groups=[])
        self.popen = spawn(argv, preexec=_die_with_parent if _prctl else None,
                           stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                           env=env, cwd=cwd, **extra)
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def exit_code(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit (subprocess.TimeoutExpired if it does not); its code."""
        code = self.popen.wait(timeout)
        self._log.close()
        return code

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            text = []
        return f"--- {self.name} ({self.log_path}) ---\n" + "\n".join(text)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Ask the leader to stop; then SIGKILL its group and the descendants recorded now."""
        recorded = descendants(self.pid) if self.alive() else {}
        if self.alive():
            try:
                self.popen.send_signal(sig)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill(recorded)

    def kill(self, recorded: dict[int, int] | None = None) -> None:
        """SIGKILL the whole process: leader, its group, and its (recorded) descendants."""
        recorded = recorded if recorded is not None else descendants(self.pid)
        _signal_group(self.pid, signal.SIGKILL)
        for pid, started in recorded.items():
            stat = _proc_stat(pid)
            if stat and stat[1] == started:          # the same process, not a reused pid
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        self.popen.wait()
        self._log.close()


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> bytes:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def _base_env() -> dict[str, str]:
    """This process's environment without anything that points Ray or MLflow elsewhere."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("RAY_", "MLFLOW_")) and key not in ("PGPASSWORD",)}
    # the venv's console scripts first: a Ray Job's entrypoint runs `sweeps` from PATH
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", os.defpath)])
    env.update(RAY_USAGE_STATS_ENABLED="0", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", MPLBACKEND="Agg",
               MLFLOW_ENABLE_ASYNC_LOGGING="false")
    return env


# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------

def postgres_bindir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
                        reverse=True)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "postgres").exists():
            return bindir
    initdb = shutil.which("initdb")
    if initdb and shutil.which("postgres"):
        return Path(initdb).parent
    raise RuntimeError("PostgreSQL is not installed: run scripts/ensure_postgres.sh")


@dataclass
class Postgres:
    root: Path
    port: int
    user: str = "mlflow"
    database: str = "mlflow"
    password: str = field(default_factory=lambda: secrets.token_hex(16))
    os_user: str | None = None      # the unprivileged account the server runs as (None: ours)
    proc: Proc | None = None

    @classmethod
    def create(cls, root: Path) -> "Postgres":
        """initdb a cluster in root/data, owned by an unprivileged user (postgres refuses root)."""
        os_user = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no `postgres` user to run "
                                   "PostgreSQL as: run scripts/ensure_postgres.sh") from None
            os_user = "postgres"
        pg = cls(root=root, port=free_port(), os_user=os_user)
        pwfile = root / "pwfile"
        pwfile.write_text(pg.password + "\n")
        if os_user:
            entry = pwd.getpwnam(os_user)
            for path in (root, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(pwfile, 0o600)
        initdb = [str(postgres_bindir() / "initdb"), "-D", str(root / "data"), "-U", pg.user,
                  "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync",
                  "--no-instructions"]
        extra = dict(user=os_user, group=pwd.getpwnam(os_user).pw_gid, extra_groups=[]) \
            if os_user else {}
        done = subprocess.run(initdb, cwd=root, env=_base_env(), capture_output=True, text=True,
                              **extra)
        if done.returncode:
            raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
        pwfile.unlink()
        return pg

    def start(self) -> None:
        argv = [str(postgres_bindir() / "postgres"), "-D", str(self.root / "data"),
                "-c", f"listen_addresses={LOOPBACK}", "-c", f"port={self.port}",
                "-c", f"unix_socket_directories={self.root}",
                # a throwaway test server: durability off, speed on
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        self.proc = Proc("postgres", argv, self.root.parent / "postgres.log", _base_env(),
                         cwd=self.root, user=self.os_user)

    def connect(self, database: str | None = None):
        import psycopg2

        return psycopg2.connect(host=LOOPBACK, port=self.port, user=self.user,
                                password=self.password, dbname=database or "postgres",
                                connect_timeout=3)

    def wait_ready(self) -> None:
        def accepting():
            self.connect().close()
            return True

        wait_for("PostgreSQL accepting connections", accepting, watch=(self.proc,))
        conn = self.connect()
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{self.database}"')
        conn.close()

    @property
    def store_uri(self) -> str:
        """The backend store URI, without the password (libpq reads PGPASSWORD)."""
        return f"postgresql+psycopg2://{self.user}@{LOOPBACK}:{self.port}/{self.database}"

    def stop(self) -> None:
        if self.proc:
            self.proc.stop(signal.SIGINT)           # "fast" shutdown


# ---------------------------------------------------------------------------------------------
# MLflow tracking server
# ---------------------------------------------------------------------------------------------

@dataclass
class MlflowServer:
    store_uri: str
    password: str
    artifacts: Path
    logs: Path
    port: int = field(default_factory=free_port)
    proc: Proc | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        argv = [str(BIN / "mlflow"), "server", "--backend-store-uri", self.store_uri,
                "--serve-artifacts", "--artifacts-destination", str(self.artifacts),
                # one worker, as docker-compose.yml says why
                "--host", LOOPBACK, "--port", str(self.port), "--workers", "1"]
        # MLflow's server-side job runner (GenAI jobs) is not used: off, as in docker-compose.yml.
        env = dict(_base_env(), PGPASSWORD=self.password, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        self.starts += 1
        self.proc = Proc("mlflow", argv, self.logs / f"mlflow-{self.starts}.log", env)

    def healthy(self) -> bool:
        try:
            return http_get(f"{self.url}/health", timeout=2).strip() == b"OK"
        except (OSError, urllib.error.URLError):
            return False

    def wait_ready(self) -> None:
        wait_for("mlflow server /health", self.healthy, watch=(self.proc,))

    def stop(self) -> None:
        if self.proc:
            self.proc.stop(signal.SIGTERM)

    def restart(self) -> None:
        """Stop the server and start it again on the same port (the same store)."""
        self.stop()
        wait_for("mlflow port released", lambda: not self.healthy())
        self.start()
        self.wait_ready()


# ---------------------------------------------------------------------------------------------
# Ray cluster: a head node and a second node
# ---------------------------------------------------------------------------------------------

@dataclass
class RayCluster:
    temp_dir: Path          # short: Ray's unix socket paths live under it
    logs: Path
    token: str = field(default_factory=lambda: secrets.token_hex(32))
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    client_port: int = field(default_factory=free_port)
    head: Proc | None = None
    worker: Proc | None = None
    workers_started: int = 0
    killed_nodes: set[str] = field(default_factory=set)

    @property
    def address(self) -> str:
        """The GCS address `ray.init` / `sweeps run --address` take."""
        return f"{LOOPBACK}:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        """The dashboard and job server (`sweeps submit --address`)."""
        return f"http://{LOOPBACK}:{self.dashboard_port}"

    @property
    def client_address(self) -> str:
        return f"ray://{LOOPBACK}:{self.client_port}"

    def env(self) -> dict[str, str]:
        """Environment for anything that talks to this cluster: token auth, loopback addresses."""
        return dict(_base_env(), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token,
                    **RAY_LOOPBACK_ENV, **GRPC_FORK_ENV)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _node_args(self, temp_dir: Path) -> list[str]:
        """Per-node settings: its own temp dir (two nodes sharing one would unpack each job's
        working_dir into the same place, under each other's feet), and ports Ray would
        otherwise pick by default (and share with other Ray instances on this machine)."""
        return ["--temp-dir", str(temp_dir),
                "--dashboard-agent-listen-port", str(free_port()),
                "--dashboard-agent-grpc-port", str(free_port()),
                "--metrics-export-port", str(free_port()),
                "--runtime-env-agent-port", str(free_port()),
                "--object-store-memory", str(200 * 1024 * 1024),
                "--num-cpus", "1", "--disable-usage-stats"]

    def start_head(self) -> None:
        if self.head is not None:                    # a new attempt: new ports, nothing reused
            self.gcs_port, self.dashboard_port, self.client_port = (free_port() for _ in range(3))
        argv = [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", LOOPBACK,
                "--port", str(self.gcs_port), "--dashboard-host", LOOPBACK,
                "--dashboard-port", str(self.dashboard_port),
                "--ray-client-server-port", str(self.client_port),
                *self._node_args(self.temp_dir / "head")]
        env = dict(self.env(), AUTOSCALER_METRIC_PORT=str(free_port()),
                   DASHBOARD_METRIC_PORT=str(free_port()),
                   RAY_JOB_STOP_WAIT_TIME_S="30")   # as in docker-compose.yml
        self.head = Proc("ray-head", argv, self.logs / "ray-head.log", env)

    def wait_head(self) -> None:
        """Wait until the head is up; start it again if it exits meanwhile (NODE_START_ATTEMPTS)."""
        for attempt in range(1, NODE_START_ATTEMPTS + 1):
            try:
                return self._wait_head_once()
            except ProcessExited:
                if attempt == NODE_START_ATTEMPTS:
                    raise
                self.head.kill()
                self.start_head()

    def _wait_head_once(self) -> None:
        def jobs_api():   # the job server answers (with the token) once the dashboard is up
            return isinstance(json.loads(http_get(f"{self.dashboard_url}/api/jobs/",
                                                  self.headers)), list)

        wait_for("Ray head: GCS healthy", lambda: http_get(
            f"{self.dashboard_url}/api/gcs_healthz", timeout=2), watch=(self.head,))
        wait_for("Ray head: job server", jobs_api, watch=(self.head,))
        # The dashboard answers before the head's raylet has registered (when `ray start` may
        # still give up): wait for the node itself.
        wait_for("Ray head: node alive", lambda: any(self.alive_nodes().values()),
                 watch=(self.head,))

    def start_worker(self) -> None:
        self.workers_started += 1
        argv = [sys.executable, str(HERE / "ray_node.py"), "--block", "--address", self.address,
                *self._node_args(self.temp_dir / f"w{self.workers_started}")]
        self.worker = Proc(f"ray-worker-{self.workers_started}", argv,
                           self.logs / f"ray-worker-{self.workers_started}.log", self.env())

    def nodes(self) -> list[dict]:
        """The cluster's nodes from Ray's state API (over HTTP, with the token)."""
        body = json.loads(http_get(f"{self.dashboard_url}/api/v0/nodes?limit=1000&detail=1",
                                   self.headers))
        return body["data"]["result"]["result"]

    def alive_nodes(self) -> dict[str, bool]:
        """node id -> is head node, for the ALIVE nodes."""
        return {node["node_id"]: node["is_head_node"] for node in self.nodes()
                if node["state"] == "ALIVE"}

    def tasks(self, name: str) -> list[dict]:
        """Tasks named `name` (every attempt, retries included) from Ray's state API."""
        query = (f"limit=10000&detail=1&filter_keys=name&filter_predicates=%3D"
                 f"&filter_values={name}")
        body = json.loads(http_get(f"{self.dashboard_url}/api/v0/tasks?{query}", self.headers,
                                   timeout=30))
        return body["data"]["result"]["result"]

    def live_nodes(self) -> dict[str, bool]:
        """alive_nodes() less the nodes this cluster killed: Ray's state API keeps reporting a
        killed node ALIVE until its health checks time out (tens of seconds)."""
        return {node: head for node, head in self.alive_nodes().items()
                if node not in self.killed_nodes}

    def wait_nodes(self, count: int) -> dict[str, bool]:
        watch = tuple(p for p in (self.head, self.worker) if p is not None)
        return wait_for(f"{count} Ray nodes alive",
                        lambda: len(nodes := self.live_nodes()) == count and nodes, watch=watch)

    def ensure_worker(self) -> dict[str, bool]:
        """Make sure the second node is up (a test may have killed it), starting it again if it
        exits while starting (NODE_START_ATTEMPTS); returns alive nodes."""
        for attempt in range(1, NODE_START_ATTEMPTS + 1):
            if self.worker is None or not self.worker.alive():
                if self.worker is not None:
                    self.worker.kill()
                self.start_worker()
            try:
                return self.wait_nodes(2)
            except ProcessExited as exited:
                if exited.proc is not self.worker or attempt == NODE_START_ATTEMPTS:
                    raise

    def kill_worker(self) -> str:
        """A node crash: SIGKILL every process of the second node at once; its node id."""
        [node] = [node for node, head in self.live_nodes().items() if not head]
        self.worker.kill()
        self.killed_nodes.add(node)
        return node

    def stop(self) -> None:
        for proc in (self.worker, self.head):
            if proc is not None:
                proc.stop(signal.SIGTERM)


# ---------------------------------------------------------------------------------------------
# The whole stack
# ---------------------------------------------------------------------------------------------

@dataclass
class NativeStack:
    root: Path
    postgres: Postgres
    mlflow: MlflowServer
    ray: RayCluster

    @property
    def tracking_uri(self) -> str:
        """The tracking server: what readers, the UI and Ray Jobs use."""
        return self.mlflow.url

    @property
    def store_uri(self) -> str:
        """The server's database: where a driver writes runs in bulk (with `driver_env`)."""
        return self.postgres.store_uri

    def env(self) -> dict[str, str]:
        """For `sweeps` subprocesses: the cluster's token and loopback switch, no stray URIs."""
        return self.ray.env()

    def driver_env(self) -> dict[str, str]:
        """`env` for a driver writing to `store_uri`, as docker-compose.yml's sweep service:
        the database password, and the server whose proxy stores the artifacts."""
        return dict(self.env(), PGPASSWORD=self.postgres.password,
                    SWEEPS_ARTIFACTS_SERVER=self.mlflow.url)

    @classmethod
    def start(cls, logs: Path) -> "NativeStack":
        """Start everything; independent parts (PostgreSQL->MLflow, Ray head) start in parallel.

        Server logs go to `logs` (kept after the run); data lives in temp dirs removed by stop().
        """
        root = Path(tempfile.mkdtemp(prefix="sweeps-stack-"))
        pg_root = root / "pg"
        pg_root.mkdir()
        ray_tmp = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))   # short socket paths
        os.chmod(root, 0o755)                        # the postgres user must reach pg_root
        stack = None
        try:
            postgres = Postgres.create(pg_root)
            ray = RayCluster(temp_dir=ray_tmp, logs=logs)
            mlflow = MlflowServer(store_uri=postgres.store_uri, password=postgres.password,
                                  artifacts=root / "artifacts", logs=logs)
            stack = cls(root=root, postgres=postgres, mlflow=mlflow, ray=ray)
            postgres.start()
            ray.start_head()
            postgres.wait_ready()
            mlflow.start()
            ray.wait_head()
            ray.start_worker()
            mlflow.wait_ready()
            ray.ensure_worker()
            return stack
        except BaseException:
            if stack is not None:
                stack.stop()
            shutil.rmtree(ray_tmp, ignore_errors=True)
            shutil.rmtree(root, ignore_errors=True)
            raise

    def ensure_ready(self) -> "NativeStack":
        """Both Ray nodes alive and running tasks, and the tracking server answering (a fault
        test may have killed a node or stopped the server)."""
        nodes = self.ray.ensure_worker()
        warm = Proc("warm-nodes", [sys.executable, str(HERE / "warm_nodes.py"), self.ray.address,
                                   *nodes], self.ray.logs / "warm-nodes.log", self.env())
        try:
            code = warm.wait(START_TIMEOUT)
        except subprocess.TimeoutExpired:
            warm.stop()
            code = None
        if code != 0:
            raise AssertionError(f"a Ray node does not run tasks ({code})\n{warm.tail()}")
        if not self.mlflow.healthy():
            self.mlflow.restart()
        return self

    def stop(self) -> None:
        """Stop what this stack started (each part even if another fails), remove temp dirs."""
        errors = []
        for part in (self.ray, self.mlflow, self.postgres):
            try:
                part.stop()
            except Exception as error:  # noqa: BLE001 - keep stopping the rest
                errors.append(error)
        shutil.rmtree(self.ray.temp_dir, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)
        if errors:
            raise errors[0]

    def logs(self) -> str:
        procs = [self.postgres.proc, self.mlflow.proc, self.ray.head, self.ray.worker]
        return "\n".join(proc.tail() for proc in procs if proc is not None)
