"""Shared CLI plumbing: one-line errors, the runtime, tables."""

from __future__ import annotations

import functools
import json
import sqlite3
import sys
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

import click
import psycopg
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import OperationalError, ProgrammingError

from broker.domain import ConfigError, SourceError
from broker.runtime import Runtime
from broker.store import migrate

P = ParamSpec("P")
R = TypeVar("R")
# piped output (CI logs, files) gets wide tables instead of 80 wrapped columns
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)


class CliError(click.ClickException):
    """Printed as ``error: <message>`` on one line, exit code 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def one_line_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one clear line and a non-zero exit instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (ConfigError, SourceError) as exc:
            raise CliError(str(exc)) from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise CliError(f"{where}: {first['msg']}") from None
        except (OperationalError, ProgrammingError) as exc:
            msg = str(exc.orig) if exc.orig else str(exc)
            raise CliError(f"database error: {msg.splitlines()[0]}") from None
        except (sqlite3.Error, psycopg.Error) as exc:  # raised below SQLAlchemy by the bulk ingest path
            raise CliError(f"database error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None

    return wrapper


def runtime(demo: bool = False) -> Runtime:
    return Runtime.create(demo=demo)


def require_schema(rt: Runtime) -> None:
    if not migrate.is_current(rt.engine):
        raise CliError(
            f"the database at {rt.engine.url.render_as_string(hide_password=True)} is not initialised or not current: "
            "run `broker db upgrade`"
        )


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    table = Table(title=title, show_lines=False, header_style="bold")
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r))
    console.print(table)
