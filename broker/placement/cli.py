"""``broker place JOB.yaml``: the same decision as ``POST /v1/place``, from a YAML or JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml

from broker.api.problems import Problem
from broker.cli.common import CliError, one_line_errors, print_json, print_table, require_schema, runtime
from broker.placement.service import DecisionLog, decide, parse_job


def _problem_line(p: Problem) -> str:
    errors = p.extensions.get("errors") or []
    if errors:
        return "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    rejected = p.extensions.get("rejected")
    if rejected:
        return f"{p.detail}"
    return p.detail


@click.command()
@click.argument("job_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the whole answer as POST /v1/place returns it")
@one_line_errors
def place(job_file: Path, as_json: bool) -> None:
    """Place the job described in JOB_FILE (YAML or JSON, the /v1/place schema)."""
    try:
        body = yaml.safe_load(job_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"{job_file}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise CliError(f"{job_file}: not valid YAML/JSON ({str(exc).splitlines()[0]})") from None
    rt = runtime()
    require_schema(rt)
    try:
        job = parse_job(body)
        rt.index.refresh()
        answer = json.loads(decide(rt, job, DecisionLog(rt)))
    except Problem as p:
        raise CliError(f"{job_file}: {_problem_line(p)}") from None
    if as_json:
        print_json(answer)
        return
    options: list[dict[str, Any]] = [answer["choice"], *answer["alternatives"]]
    rows = [
        [
            i,
            o["provider"],
            o["region"] + (f"/{o['zone']}" if o.get("zone") else ""),
            o["instance_type"],
            o["purchase"],
            f"{o['nodes']}x{o['gpus_per_node']} {o['gpu_model']}",
            o["hourly_usd"],
            f"{float(o['expected_hours']):.2f}",
            o["expected_cost_usd"],
        ]
        for i, o in enumerate(options)
    ]
    print_table(
        [
            "#",
            "provider",
            "region",
            "instance type",
            "purchase",
            "gpus",
            "$/hour (all nodes)",
            "expected h",
            "expected $",
        ],
        rows,
        title=f"placement {answer['placement_id']}",
    )
    choice = answer["choice"]
    click.echo("breakdown: " + ", ".join(f"{k} ${v}" for k, v in choice["breakdown"].items()))
    for reason in choice.get("reasons", []):
        click.echo(f"- {reason}")


commands = [place]
