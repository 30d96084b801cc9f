"""The image: the Dockerfile and .dockerignore, and every component's command is one of the
project's entry points in it."""

from __future__ import annotations

import re
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
import typer

from connectors.builtin import BUILTIN
from dsr.connector_registry import load_registry
from dsr.settings import Settings
from tests.deploy_manifests import (
    COMPONENTS,
    DOCKERFILE,
    DOCKERIGNORE,
    ROOT,
    Component,
    _compose_components,
    _dockerfile_cmd,
    _ids,
    _kind,
)


def _starter_commands() -> Any:
    import starter

    return typer.main.get_command(starter.app)


def _check_entry_point(command: list[str]) -> None:
    assert command[0] == "python", f"{command}: run with the image's python"
    if command[1] == "worker.py":
        flags = command[2:]
        assert flags.count("--all") <= 1
        rest = [f for f in flags if f != "--all"]
        assert len(rest) % 2 == 0, f"{command}: --connector takes a name"
        for flag, name in zip(rest[::2], rest[1::2], strict=True):
            assert flag == "--connector", f"{command}: unknown worker flag {flag}"
            assert name in BUILTIN, f"{command}: {name} is not a built-in connector"
        assert len(set(rest[1::2])) == len(rest[1::2]), f"{command}: a connector twice"
    elif command[1] == "starter.py":
        group = _starter_commands()
        path = [arg for arg in command[2:] if not arg.startswith("-")]
        for word in path:
            commands = getattr(group, "commands", None)
            if commands is None:
                break  # the rest are the command's own arguments
            assert word in commands, f"{command}: starter.py has no command {word!r}"
            group = commands[word]
    elif command[1] == "-m":
        module = command[2]
        assert module in ("services.codec_server", "services.download_server",
                          "services.officer_service", "dsr.migrations"), (
            f"{command}: not an entry point")
        assert find_spec(module) is not None, f"{command}: no module {module}"
        if module == "dsr.migrations":
            assert command[3:] == ["upgrade"], f"{command}: migrations run `upgrade`"
        else:
            assert command[3:] == [], f"{command}: {module} takes no arguments"
    else:
        raise AssertionError(f"{command}: not an entry point of the project")


@pytest.mark.parametrize("component", COMPONENTS, ids=_ids(COMPONENTS))
def test_command_is_an_entry_point(component: Component) -> None:
    _check_entry_point(component.command)


def test_dockerfile_cmd_is_the_orchestrator_worker() -> None:
    command = _dockerfile_cmd()
    _check_entry_point(command)
    assert _kind(command) == "orchestrator"


def test_every_connector_is_served() -> None:
    registry = load_registry(Settings(_env_file=None).connector_registry)  # type: ignore[call-arg]
    with_queue = {name for name in BUILTIN if registry.get(name).task_queue is not None}
    for environment in ("compose", "kubernetes"):
        served = [name for c in COMPONENTS if c.environment == environment
                  for name in c.connectors]
        assert set(served) == with_queue, f"{environment}: served {sorted(served)}"


def test_dockerfile_and_dockerignore() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.M)
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}$", text, re.M), "final stage on the slim base"
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root"), "runs as non-root"
    installs = re.findall(r"pip install (.+?)(?:\s*\\|$)", text, re.M)
    assert installs == ["."], f"installs the project only, without extras: {installs}"
    exposed = {int(p) for line in re.findall(r"^EXPOSE (.+)$", text, re.M) for p in line.split()}
    env = next(c for c in _compose_components() if c.kind == "orchestrator").env
    assert {int(env["DSR_CODEC_PORT"]), int(env["DSR_DOWNLOAD_PORT"]),
            int(env["DSR_METRICS_PORT"])} <= exposed
    ignored = set(DOCKERIGNORE.read_text(encoding="utf-8").split())
    assert {".git", ".venv", "var", "tests"} <= ignored


def test_dockerfile_ships_the_migrations() -> None:
    """dsr.migrations looks for the Alembic scripts beside the installed packages; when they
    are outside the packaged folders, the Dockerfile must copy them there."""
    from dsr import migrations

    folder = Path(migrations.MIGRATIONS_DIR).resolve()
    assert (folder / "versions").is_dir()
    relative = folder.relative_to(ROOT)
    packaged = ("dsr", "workflows", "activities", "connectors")
    if relative.parts[0] not in packaged:
        text = DOCKERFILE.read_text(encoding="utf-8")
        assert f"COPY {relative}/ " in text and "purelib" in text, (
            f"the image lacks {relative}/ beside the installed packages")
    ignored = DOCKERIGNORE.read_text(encoding="utf-8").split()
    assert relative.parts[0] not in ignored
