"""The Dockerfile, checked statically (no Docker engine here): stages, user, healthcheck, commands, paths."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker.cli.main import cli
from broker.health.endpoints import healthz

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    cmd: str
    value: str
    stage: int


def parse(text: str) -> list[Instruction]:
    """Dockerfile instructions with line continuations joined; comments and blank lines dropped."""
    out: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line, pending = pending + line, ""
        cmd, _, value = line.partition(" ")
        cmd = cmd.upper()
        if cmd == "FROM":
            stage += 1
        out.append(Instruction(cmd, value.strip(), stage))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse(DOCKERFILE.read_text(encoding="utf-8"))


def _args(instructions: list[Instruction]) -> dict[str, str]:
    found = {}
    for i in instructions:
        if i.cmd == "ARG" and "=" in i.value:
            name, _, default = i.value.partition("=")
            found[name] = default
    return found


def _final(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def _exec_form(value: str) -> list[str]:
    parsed = json.loads(value)
    assert isinstance(parsed, list), f"not exec (JSON) form: {value}"
    return [str(p) for p in parsed]


def test_parser_joins_continuations_and_counts_stages() -> None:
    got = parse("FROM a AS x\n# c\nRUN one \\\n  # inner\n  two\nFROM b\nUSER 1\n")
    assert [(i.cmd, i.value, i.stage) for i in got] == [
        ("FROM", "a AS x", 0),
        ("RUN", "one two", 0),
        ("FROM", "b", 1),
        ("USER", "1", 1),
    ]


def test_multi_stage_on_slim_python_311(instructions: list[Instruction]) -> None:
    args = _args(instructions)
    froms = [i.value for i in instructions if i.cmd == "FROM"]
    assert len(froms) >= 2, "expected a build stage and a runtime stage"
    for value in froms:
        image = value.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image)
        assert image == "python:3.11-slim", value
    assert " AS " in froms[0].upper(), "the build stage must be named for COPY --from"
    build_name = froms[0].split()[-1]
    copies_from_build = [i for i in _final(instructions) if i.cmd == "COPY" and f"--from={build_name}" in i.value]
    assert copies_from_build, "the runtime stage must copy the build stage's result"
    # nothing is compiled or pip-installed in the runtime stage
    assert not [i for i in _final(instructions) if i.cmd == "RUN" and "pip install" in i.value]


def test_runtime_runs_as_non_root(instructions: list[Instruction]) -> None:
    users = [i.value for i in _final(instructions) if i.cmd == "USER"]
    assert users, "the runtime stage never switches user"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]
    created = " ".join(i.value for i in _final(instructions) if i.cmd == "RUN")
    assert f"--uid {user}" in created or f"useradd {user}" in created, "the user is not created in the image"


def test_entrypoint_serves_on_all_interfaces_and_healthcheck_probes_healthz(instructions: list[Instruction]) -> None:
    final = _final(instructions)
    entry = _exec_form(next(i.value for i in reversed(final) if i.cmd == "ENTRYPOINT"))
    cmd = _exec_form(next(i.value for i in reversed(final) if i.cmd == "CMD"))
    assert entry == ["broker"]
    assert cmd[:3] == ["serve", "--host", "0.0.0.0"]
    port = cmd[cmd.index("--port") + 1]
    assert f"EXPOSE {port}" in [f"{i.cmd} {i.value}" for i in final]
    health = next(i.value for i in final if i.cmd == "HEALTHCHECK")
    assert "/healthz" in healthz.paths
    assert f"http://127.0.0.1:{port}/healthz" in health
    probe = _exec_form(health.split(" CMD ", 1)[1])
    # the slim image has no curl: the probe is Python's own urllib, and must be valid Python
    assert probe[:2] == ["python", "-c"]
    compile(probe[2], "<healthcheck>", "exec")


def test_serve_and_migrate_commands_exist_in_the_cli(instructions: list[Instruction]) -> None:
    cmd = _exec_form(next(i.value for i in reversed(_final(instructions)) if i.cmd == "CMD"))
    runner = CliRunner()
    assert runner.invoke(cli, [*cmd, "--help"]).exit_code == 0  # every option the image passes exists
    assert runner.invoke(cli, ["db", "upgrade", "--help"]).exit_code == 0  # the separate migration command


def test_copied_paths_exist_and_config_env_points_into_the_image(instructions: list[Instruction]) -> None:
    build = [i for i in instructions if i.stage == 0]
    copied: list[str] = []
    for i in build:
        if i.cmd == "COPY" and "--from" not in i.value:
            parts = shlex.split(i.value)
            copied += parts[:-1]
    assert {"pyproject.toml", "broker", "adapters", "migrations", "config"} <= set(copied)
    for path in copied:
        assert (ROOT / path).exists(), f"COPY {path}: missing in the repository"
    env = " ".join(i.value for i in _final(instructions) if i.cmd == "ENV")
    config = re.search(r"BROKER_CONFIG=(\S+)", env)
    assert config is not None
    workdir = next(i.value for i in build if i.cmd == "WORKDIR")
    assert (ROOT / Path(config.group(1)).relative_to(workdir)).is_file()
    assert "BROKER_DATABASE_URL" not in env, "the database URL (a secret) must come from the runtime environment"


def test_dependency_step_installs_exactly_pyprojects_dependencies(instructions: list[Instruction]) -> None:
    step = next(i.value for i in instructions if i.cmd == "RUN" and "tomllib" in i.value)
    snippet = shlex.split(step.split(">", 1)[0].removeprefix("python -c "))[0]
    out = subprocess.run(
        [sys.executable, "-c", snippet], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    assert out == [d for dep in declared for d in dep.split()]
