"""docker-compose.yml, Dockerfile and .env.example, checked without a Docker engine.

The compose file is validated against the Compose Specification's JSON Schema (vendored in
tests/cluster/data/, Apache-2.0, origin in its README.md), after interpolating it
the way `docker compose` does with the values of .env.example. Every command the stack runs is
parsed by the real command-line parser of the program it names (`sweeps`, `mlflow server`,
`ray start`), so a renamed flag or subcommand fails here, not in a container.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import warnings
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
SCHEMA_FILE = Path(__file__).resolve().parent / "data" / "compose-spec.json"

SERVICES = {"postgres", "mlflow", "ray-head", "ray-worker", "sweep"}
PROJECT_SERVICES = {"mlflow", "ray-head", "ray-worker", "sweep"}   # built from our Dockerfile
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$", re.IGNORECASE)
HEALTHY = "service_healthy"


# ---------------------------------------------------------------------------------------------
# Reading the files the way docker compose does
# ---------------------------------------------------------------------------------------------

def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments skipped (the .env format compose reads)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        values[key.strip()] = value.strip().strip("'\"")
    return values


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}."""

    def replace(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name = match["bare"] or match["name"]
        op, arg = match["op"], match["arg"]
        value = env.get(name)
        if op in (":-", "-"):
            return arg if value is None or (op == ":-" and value == "") else value
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                raise KeyError(f"{name} is required: {arg}")
            return value
        return value or ""

    return _VARIABLE.sub(replace, text)


def interpolate_tree(node, env: dict[str, str]):
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    return node


@cache
def raw_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@cache
def example_env() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@cache
def compose() -> dict:
    """The compose file as `docker compose config` would see it with .env = .env.example."""
    return interpolate_tree(raw_compose(), example_env())


def services() -> dict[str, dict]:
    return compose()["services"]


def command_of(service: dict) -> list[str]:
    command = service.get("command")
    assert command, "every service of ours names its command explicitly"
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


def environment_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return env


def published_ports(service: dict) -> list[tuple[str, str, str]]:
    """(host_ip, published, target) for each ports entry, short or long syntax."""
    entries = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            entries.append((port.get("host_ip", ""), str(port.get("published", "")),
                            str(port["target"])))
            continue
        parts = str(port).split(":")
        if len(parts) == 3:
            entries.append((parts[0], parts[1], parts[2]))
        elif len(parts) == 2:
            entries.append(("", parts[0], parts[1]))
        else:
            entries.append(("", "", parts[0]))
    return entries


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def click_command(program: str, subcommand: str):
    """The real click command behind `<program> <subcommand>` (the installed version)."""
    if program == "sweeps":
        import typer.main

        from sweeps.cli import app

        group = typer.main.get_command(app)
    elif program == "mlflow":
        from mlflow.cli import cli as group
    elif program == "ray":
        with warnings.catch_warnings():   # ray's CLI imports Serve, which warns on import
            warnings.simplefilter("ignore")
            from ray.scripts.scripts import cli as group
    else:  # pragma: no cover - a new program in the stack needs a parser here
        raise AssertionError(f"no parser known for {program!r}")
    assert subcommand in group.commands, f"`{program} {subcommand}` does not exist"
    return group.commands[subcommand]


class BadCommand(AssertionError):
    """A command line its program's parser rejects (unknown flag, bad value, missing argument)."""


def parse_command(argv: list[str]) -> dict:
    """Parse argv with the program's own parser (never runs it); BadCommand if it rejects it.

    typer vendors its own copy of click, so its UsageError is not click.UsageError: both are
    recognised by class name.
    """
    program, subcommand, *args = argv
    command = click_command(program, subcommand)
    try:
        with command.make_context(f"{program} {subcommand}", list(args)) as ctx:
            return dict(ctx.params)
    except Exception as error:
        if any(cls.__name__ == "UsageError" for cls in type(error).__mro__):
            raise BadCommand(f"{' '.join(argv)}: {error}") from error
        raise


# ---------------------------------------------------------------------------------------------
# The Compose Specification
# ---------------------------------------------------------------------------------------------

def test_compose_file_validates_against_the_compose_specification():
    assert SCHEMA_FILE.is_file(), f"Compose Specification schema missing: {SCHEMA_FILE}"
    schema = json.loads(SCHEMA_FILE.read_text())
    assert "draft-07" in schema.get("$schema", "")
    validator = jsonschema.Draft7Validator(schema)
    for label, document in (("as written", raw_compose()), ("interpolated", compose())):
        problems = [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
                    for error in validator.iter_errors(document)]
        assert not problems, f"docker-compose.yml ({label}):\n" + "\n".join(problems)


def test_schema_validation_rejects_a_broken_compose_file():
    """The validation above can fail: an unknown service key is reported."""
    schema = json.loads(SCHEMA_FILE.read_text())
    broken = json.loads(json.dumps(compose()))
    broken["services"]["mlflow"]["healthcheck"]["tset"] = ["CMD", "true"]
    broken["services"]["ray-worker"]["ports"] = [{"target": "not-a-port"}]
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(broken))
    assert errors


def test_interpolation_requires_the_secrets_from_the_env_file():
    env = dict(example_env())
    del env["POSTGRES_PASSWORD"]
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate_tree(raw_compose(), env)


# ---------------------------------------------------------------------------------------------
# Topology
# ---------------------------------------------------------------------------------------------

def test_stack_has_the_five_services_and_named_volumes():
    assert set(services()) == SERVICES
    volumes = set(compose().get("volumes") or {})
    mounts = {name: [str(v).split(":")[0] for v in svc.get("volumes") or []]
              for name, svc in services().items()}
    assert mounts["postgres"] and set(mounts["postgres"]) <= volumes   # named, not a host path
    assert mounts["mlflow"] and set(mounts["mlflow"]) <= volumes


def test_mlflow_server_uses_postgres_and_serves_artifacts_from_its_volume():
    params = parse_command(command_of(services()["mlflow"]))
    assert params["backend_store_uri"].startswith("postgresql+psycopg2://")   # the driver we ship
    assert "@postgres:5432/" in params["backend_store_uri"]
    assert ":" not in params["backend_store_uri"].split("://", 1)[1].split("@", 1)[0], \
        "no password in the store URI (libpq reads PGPASSWORD)"
    assert params["serve_artifacts"] is True
    target = params["artifacts_destination"]
    assert any(str(v).endswith(":" + target) for v in services()["mlflow"]["volumes"])
    assert params["host"] == "0.0.0.0"           # reachable by the other containers
    assert params["port"] == 5000
    # uvicorn with several workers delays every response by ~40 ms (delayed ACKs)
    assert int(params["workers"]) == 1


def test_ray_head_runs_dashboard_job_server_and_client_server():
    params = parse_command(command_of(services()["ray-head"]))
    assert params["head"] and params["block"]
    assert params["port"] == 6379
    assert params["dashboard_port"] == 8265 and params["dashboard_host"] == "0.0.0.0"
    assert params["ray_client_server_port"] == 10001


def test_ray_worker_joins_the_head_and_can_be_scaled():
    worker = services()["ray-worker"]
    params = parse_command(command_of(worker))
    assert params["address"] == "ray-head:6379" and params["block"] and not params["head"]
    # --scale ray-worker=N needs N identical containers: no fixed name, no fixed host port.
    assert "container_name" not in worker
    assert not worker.get("ports")
    assert worker["depends_on"]["ray-head"]["condition"] == HEALTHY


def test_sweep_service_runs_a_config_from_the_project_against_head_and_mlflow():
    from typer.testing import CliRunner

    from sweeps.cli import app

    sweep = services()["sweep"]
    argv = command_of(sweep)
    assert argv[:2] == ["sweeps", "run"]
    params = parse_command(argv)
    # the driver writes runs straight into the server's database (the bulk writer) and its
    # artifacts through the server that serves them
    server = parse_command(command_of(services()["mlflow"]))
    assert params["tracking_uri"] == server["backend_store_uri"]
    environment = environment_of(sweep)
    assert environment["SWEEPS_ARTIFACTS_SERVER"] == "http://mlflow:5000"
    assert environment["PGPASSWORD"] == environment_of(services()["mlflow"])["PGPASSWORD"]
    assert params["address"].startswith("ray://ray-head:")
    client_port = params["address"].rsplit(":", 1)[1]
    head = parse_command(command_of(services()["ray-head"]))
    assert int(client_port) == head["ray_client_server_port"]
    config = REPO / params["file"]
    assert config.is_file() and config.parent == REPO / "configs"   # the image copies configs/
    result = CliRunner().invoke(app, ["validate", str(config)])
    assert result.exit_code == 0, result.output
    assert sweep.get("restart") == "no"                            # one-shot
    for dependency in ("mlflow", "ray-head", "ray-worker"):
        assert sweep["depends_on"][dependency]["condition"] == HEALTHY


def test_every_command_parses_with_the_installed_programs():
    """Each service command (and each project command-line flag it uses) exists."""
    for name in PROJECT_SERVICES:
        parse_command(command_of(services()[name]))
    with pytest.raises(BadCommand):
        parse_command(["ray", "start", "--head", "--no-such-flag"])
    with pytest.raises(BadCommand):
        parse_command(["sweeps", "run", "configs/card.yaml", "--adress", "x"])
    with pytest.raises(BadCommand):
        parse_command(["mlflow", "server", "--port", "not-a-number"])


def test_console_scripts_used_by_the_stack_are_installed_by_the_project():
    from importlib.metadata import distribution, entry_points

    scripts = {ep.name: ep for ep in entry_points(group="console_scripts")}
    for program in {command_of(services()[name])[0] for name in PROJECT_SERVICES}:
        assert program in scripts, f"{program}: no console script installed"
    assert scripts["sweeps"].value == "sweeps.cli:main"    # (`app`, then a quick exit)
    requires = " ".join(distribution("backprop-sweeps").requires or [])
    assert "ray[default]" in requires.replace(" ", "") and "mlflow" in requires
    assert "psycopg2" in requires                                    # the PostgreSQL driver


# ---------------------------------------------------------------------------------------------
# Safety: ports, users, secrets
# ---------------------------------------------------------------------------------------------

def test_published_ports_are_bound_to_loopback_only():
    published = {name: published_ports(svc) for name, svc in services().items()}
    assert published["mlflow"] and published["ray-head"]
    for name, entries in published.items():
        for host_ip, _, _ in entries:
            assert host_ip == "127.0.0.1", f"{name}: port published on {host_ip or 'all addresses'}"
    # The broken form is detected:
    assert published_ports({"ports": ["5000:5000"]})[0][0] == ""


def test_no_service_runs_as_root():
    final_user = [args for word, args in dockerfile_instructions() if word == "USER"]
    assert final_user and final_user[-1] not in ("root", "0") and not final_user[-1].startswith("0:")
    for name, svc in services().items():
        user = str(svc.get("user", ""))
        if name in PROJECT_SERVICES:
            assert "build" in svc or svc.get("image") == services()["mlflow"]["image"]
            user = user or final_user[-1]
        assert user, f"{name}: no user set (the image's default may be root)"
        assert user.split(":")[0] not in ("root", "0"), f"{name} runs as root"
        assert not svc.get("privileged"), f"{name} is privileged"


def test_secrets_come_from_the_env_file_which_git_ignores():
    env_example = example_env()
    secrets = {key for key in env_example if SECRET_NAME.search(key)}
    assert {"POSTGRES_PASSWORD", "RAY_AUTH_TOKEN"} <= secrets
    for value in (env_example[key] for key in secrets):
        assert value == "change-me", "the example file holds placeholders only"
    raw = raw_compose()
    for name, svc in raw["services"].items():
        for key, value in environment_of(svc).items():
            if SECRET_NAME.search(key):
                match = re.fullmatch(r"\$\{(\w+):\?[^}]+\}", str(value))
                assert match, f"{name}: {key} must be ${{VAR:?...}} from .env, not {value!r}"
                assert match[1] in env_example
    text = COMPOSE_FILE.read_text()
    for secret in secrets:
        assert f"{secret}=" not in text and f"{secret}:-" not in text   # no inline defaults
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO)
    assert ignored.returncode == 0, ".env must be git-ignored"
    assert ".env" in (REPO / ".dockerignore").read_text().split(), ".env kept out of images"


# ---------------------------------------------------------------------------------------------
# Start order
# ---------------------------------------------------------------------------------------------

def test_long_running_services_have_healthchecks_and_start_in_order():
    svcs = services()
    for name in ("postgres", "mlflow", "ray-head", "ray-worker"):
        check = svcs[name].get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
    order = {"mlflow": {"postgres"}, "ray-worker": {"ray-head"},
             "sweep": {"mlflow", "ray-head", "ray-worker"}}
    for name, needs in order.items():
        depends = svcs[name]["depends_on"]
        assert set(depends) == needs
        for dependency in needs:
            assert depends[dependency]["condition"] == HEALTHY
            assert "healthcheck" in svcs[dependency]
    # no cycles: a topological order exists
    remaining = {name: set((svc.get("depends_on") or {})) for name, svc in svcs.items()}
    while remaining:
        ready = [name for name, needs in remaining.items() if not needs & set(remaining)]
        assert ready, f"depends_on cycle among {sorted(remaining)}"
        for name in ready:
            del remaining[name]


def test_healthchecks_probe_the_ports_the_commands_open():
    svcs = services()
    mlflow = parse_command(command_of(svcs["mlflow"]))
    head = parse_command(command_of(svcs["ray-head"]))
    worker = parse_command(command_of(svcs["ray-worker"]))
    probes = {
        "mlflow": f"localhost:{mlflow['port']}/health",
        "ray-head": f"localhost:{head['dashboard_port']}/api/gcs_healthz",
        "ray-worker": f"localhost:{worker['dashboard_agent_listen_port']}/api/local_raylet_healthz",
    }
    for name, url in probes.items():
        assert url in " ".join(svcs[name]["healthcheck"]["test"]), name


# ---------------------------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------------------------

def test_dockerfile_builds_on_an_official_base_with_the_pinned_versions():
    instructions = dockerfile_instructions()
    bases = [args for word, args in instructions if word == "FROM"]
    assert len(bases) == 1
    assert re.fullmatch(r"(python:3\.11-slim[\w.-]*|rayproject/ray:[\w.-]+)", bases[0]), bases[0]
    runs = " ".join(args for word, args in instructions if word == "RUN")
    assert "pip install -c constraints.txt ." in runs


def test_dockerfile_copies_only_files_that_exist_and_are_not_dockerignored():
    ignored = {line.strip().rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    copied = []
    for word, args in dockerfile_instructions():
        if word in ("COPY", "ADD"):
            parts = [p for p in shlex.split(args) if not p.startswith("--")]
            copied += parts[:-1]
    assert {"pyproject.toml", "constraints.txt", "core", "sweeps", "configs"} <= set(copied)
    for source in copied:
        assert (REPO / source).exists(), f"Dockerfile copies {source}, which does not exist"
        assert source not in ignored, f"Dockerfile copies {source}, but .dockerignore drops it"
