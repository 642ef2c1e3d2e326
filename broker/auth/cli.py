"""``broker keys create|list|revoke``."""

from __future__ import annotations

import click

from broker.auth import service
from broker.cli.common import CliError, one_line_errors, print_json, print_table, require_schema, runtime


@click.group()
def keys() -> None:
    """API keys (scopes: place, read, admin). Only hashes are stored: a lost key is revoked and replaced."""


@keys.command("create")
@click.option("--name", required=True, help="who or what uses the key, e.g. slurm-prod")
@click.option(
    "--scope", "scopes", multiple=True, required=True, type=click.Choice([s.value for s in service.Scope]),
    help="repeat for several; admin implies the others",
)
@click.option("--rate-limit", type=click.FloatRange(min=0), default=None,
              help="requests/s for this key (default: the server's; 0: unlimited)")
@click.option("--burst", type=click.IntRange(min=1), default=None, help="bucket size (default: the server's)")
@click.option("--json", "as_json", is_flag=True)
@one_line_errors
def create(name: str, scopes: tuple[str, ...], rate_limit: float | None, burst: int | None, as_json: bool) -> None:
    """Create a key and print its token: it is shown this once and cannot be recovered."""
    rt = runtime()
    require_schema(rt)
    info, token = service.create_key(rt.engine, name, scopes, rate_per_second=rate_limit, burst=burst)
    if as_json:
        print_json({**info.public(), "token": token})
        return
    click.echo(f"created key {info.id} ({info.name}) with scopes {', '.join(s.value for s in info.scopes)}")
    click.echo(token)
    click.echo("store this token now: it is not saved and will not be shown again", err=True)


@keys.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="include revoked keys")
@click.option("--json", "as_json", is_flag=True)
@one_line_errors
def list_(include_revoked: bool, as_json: bool) -> None:
    """Keys by id and name (never their secrets)."""
    rt = runtime()
    require_schema(rt)
    found = service.list_keys(rt.engine, include_revoked=include_revoked)
    if as_json:
        print_json([k.public() for k in found])
        return
    rows = [
        [
            k.id,
            k.name,
            ",".join(s.value for s in k.scopes),
            k.created_at.isoformat(timespec="seconds"),
            k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "",
            "default" if k.rate_per_second is None else ("unlimited" if k.rate_per_second == 0 else k.rate_per_second),
        ]
        for k in found
    ]
    print_table(["id", "name", "scopes", "created", "revoked", "rate/s"], rows)


@keys.command("revoke")
@click.argument("key_id")
@one_line_errors
def revoke(key_id: str) -> None:
    """Revoke KEY_ID (the 8 characters after gpb_); replicas stop accepting it within seconds."""
    rt = runtime()
    require_schema(rt)
    try:
        info = service.revoke_key(rt.engine, key_id)
    except service.KeyNotFound as exc:
        raise CliError(str(exc)) from None
    click.echo(f"revoked key {info.id} ({info.name})")


commands: list[click.Command] = [keys]
