"""docker-compose.yml agrees with the code: the variables it sets are ones lumaweb reads, its
commands exist, its workers consume every queue the settings route tasks to, gunicorn keeps a
connection open longer than the pages poll, and nginx gets deploy/nginx.conf. With Debian's
``docker-compose`` (v1, which needs no engine) installed, the file is also validated by it.

No engine is needed: the file is read as YAML, and the names are compared with what the
settings and the code read (their source, parsed).
"""

from __future__ import annotations

import ast
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands

from simulator.server import CONTROL_TOKEN_ENV

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
APP_SERVICES = ("web", "worker", "beat")
# Read by the images or by compose itself, not by lumaweb: PostgreSQL's image, and the
# addresses compose publishes the ports on (.env.example documents them).
EXTERNAL = {
    "POSTGRES_DB",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "PORT",
    "BIND_ADDRESS",
    "PROXY_PORT",
}
ENV_READERS = {"env_str", "env_bool", "env_int", "env_float", "env_list", "env_price_table"}
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)")


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def python_files() -> Iterator[Path]:
    for package in ("lumaweb", "generations", "simulator"):
        yield from (ROOT / package).rglob("*.py")


@cache
def names_read() -> frozenset[str]:
    """Every environment variable the code reads by a literal name: lumaweb.env's readers
    (and, for ``env_str``, NAME_FILE beside NAME), os.environ[...], os.environ.get(...),
    os.getenv(...)."""
    names: set[str] = {CONTROL_TOKEN_ENV}
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            name = None
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                environ = called in ("get", "setdefault") and "environ" in ast.unparse(func)
                if called in ENV_READERS or called == "getenv" or environ:
                    name = node.args[0]
                    if called == "env_str" and isinstance(name, ast.Constant):
                        names.add(f"{name.value}_FILE")
            elif isinstance(node, ast.Subscript) and "environ" in ast.unparse(node.value):
                name = node.slice
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                names.add(name.value)
    return frozenset(names)


def test_the_file_reader_finds_the_settings_names() -> None:
    """The checks below are only as good as this list."""
    read = names_read()
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "MEDIA_ROOT", "LUMA_API_KEY_FILE"} <= read
    assert "CELERY_BEAT_SCHEDULE_FILENAME" in read  # a name on the line after env_str(


def test_every_variable_compose_sets_or_passes_is_read_by_lumaweb() -> None:
    data = compose()
    read = names_read()
    app = data["x-app"]
    set_names = set(app.get("environment", {}))
    for name in APP_SERVICES:
        set_names |= set(data["services"][name].get("environment") or {})
    unknown = sorted(set_names - read)
    assert not unknown, f"compose sets variables lumaweb does not read: {unknown}"
    passed = set(VARIABLE.findall(COMPOSE.read_text()))
    unknown = sorted(passed - read - EXTERNAL)
    assert not unknown, f"compose passes ${{...}} variables nothing reads: {unknown}"


def test_every_variable_of_the_env_example_is_read_by_lumaweb_or_compose() -> None:
    """.env.example is the env_file of web, worker and beat: a name in it that nothing reads is
    a setting an operator believes in and nothing obeys."""
    example = (ROOT / ".env.example").read_text()
    names = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", example, re.MULTILINE))
    unknown = sorted(names - names_read() - EXTERNAL)
    assert not unknown, f".env.example names variables nothing reads: {unknown}"


def commands() -> Iterator[tuple[str, list[str]]]:
    """(service, words) of each service's command, the parts of an `sh -c "a && b"` apart."""
    for name, service in compose()["services"].items():
        command = service.get("command")
        if command is None:
            continue
        words = shlex.split(command) if isinstance(command, str) else list(command)
        if words[:2] == ["sh", "-c"]:
            for part in re.split(r"&&|;", words[2]):
                yield name, shlex.split(part)
        else:
            yield name, words


def test_every_manage_py_subcommand_in_compose_exists() -> None:
    known = set(get_commands())
    used = [words[words.index("manage.py") + 1] for _, words in commands() if "manage.py" in words]
    assert used, "expected a manage.py command (web's migrate)"
    assert not set(used) - known, f"unknown manage.py commands: {set(used) - known}"
    for _, words in commands():
        if words[:1] == ["celery"]:
            assert words[1:3] == ["-A", "lumaweb"], words
            assert words[3] in ("worker", "beat"), words


def routed_queues() -> set[str]:
    """Every queue a task can be sent to, as the Celery app routes them: each registered
    lumaweb task through the router (CELERY_TASK_ROUTES, a task's own queue), plus the beat
    entries' own `queue` options and the default queue."""
    from lumaweb.celery import app

    app.loader.import_default_modules()
    queues = {app.conf.task_default_queue}
    for name in app.tasks:
        if name.startswith("generations."):
            route = app.amqp.router.route({}, name)
            queues.add(route["queue"].name)
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        queue = entry.get("options", {}).get("queue")
        if queue:
            queues.add(queue)
    return queues


def consumed_queues() -> dict[str, set[str]]:
    """The queues each worker service consumes (-Q / --queues, a ``${VAR:-default}`` read as
    its default; without, every queue the settings declare, or the default queue)."""
    from lumaweb.celery import app

    declared = {queue.name for queue in app.conf.task_queues or ()}
    consumed = {}
    for service, words in commands():
        if words[:4] != ["celery", "-A", "lumaweb", "worker"]:
            continue
        queues = declared or {app.conf.task_default_queue}
        for i, word in enumerate(words):
            if word in ("-Q", "--queues"):
                queues = set(_defaulted(words[i + 1]).split(","))
            elif word.startswith(("-Q", "--queues=")) and word not in ("-Q", "--queues"):
                queues = set(_defaulted(word.split("=", 1)[-1].removeprefix("-Q")).split(","))
        consumed[service] = queues
    return consumed


def _defaulted(text: str) -> str:
    """``${NAME:-value}`` (compose's interpolation) as its default value."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", text)


def test_the_workers_consume_every_queue_the_settings_route_to() -> None:
    routed, consumed = routed_queues(), consumed_queues()
    assert consumed, "no worker service in compose"
    everything = set().union(*consumed.values())
    assert not routed - everything, f"no worker consumes {sorted(routed - everything)}"
    assert not everything - routed, (
        f"workers wait on queues nothing is sent to: {everything - routed}"
    )


def keep_alive(words: list[str]) -> float:
    for i, word in enumerate(words):
        if word == "--keep-alive":
            return float(words[i + 1])
        if word.startswith("--keep-alive="):
            return float(word.split("=", 1)[1])
    return 2.0  # gunicorn's default


def poll_periods() -> set[float]:
    """Every period the pages poll at (htmx `every Ns`, and the gallery's LIVE_EVERY)."""
    from generations.views import LIVE_EVERY

    periods = {float(LIVE_EVERY)}
    for template in (ROOT / "templates").rglob("*.html"):
        periods |= {float(n) for n in re.findall(r"every (\d+(?:\.\d+)?)s", template.read_text())}
    return periods


def test_gunicorn_keeps_a_connection_open_longer_than_any_page_polls() -> None:
    """At gunicorn's default 2 s, equal to the dashboard's poll, a reused connection is closed
    just as the next poll is sent on it, and the client sees a reset under load."""
    gunicorns = [words for service, words in commands() if "gunicorn" in words]
    dockerfile = (ROOT / "Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert cmd, "the Dockerfile's CMD"
    gunicorns.append(yaml.safe_load(cmd[1]))
    longest = max(poll_periods())
    assert longest >= 2
    for words in gunicorns:
        assert keep_alive(words) > longest, " ".join(words)


def test_nginx_serves_with_deploy_nginx_conf() -> None:
    nginx = compose()["services"]["nginx"]
    mounts = [str(volume).split(":") for volume in nginx["volumes"]]
    assert ["./deploy/nginx.conf", "/etc/nginx/conf.d/default.conf", "ro"] in mounts
    assert (ROOT / "deploy" / "nginx.conf").is_file()
    assert ["media", "/data", "ro"] in mounts  # the files it sends, read-only
    assert "web" in nginx.get("depends_on", [])


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="Debian's docker-compose is not installed"
)
def test_docker_compose_validates_the_file(tmp_path: Path) -> None:
    """`docker-compose config -q` checks the schema and the interpolations without an engine.
    The file names `.env` as its env_file: the check runs on a copy with .env.example as .env."""
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    result = subprocess.run(
        ["docker-compose", "-f", str(tmp_path / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
