"""``modelfn promote`` (plain, ``--canary``, ``--shadow``, ``--finish``), ``modelfn rollback``, ``modelfn history``."""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Callable
from typing import Any

import click

SHARE = click.FloatRange(0, 100, min_open=True)


def register(
    main: click.Group, store_options: Callable[[], dict[str, str | None]], settings: Callable[[], Any]
) -> None:
    """Add the alias commands; the CLI passes its one settings loader so configuration is read in one place."""
    ctx_obj = {"store_options": store_options, "settings": settings}
    for command in (promote, rollback, history_cmd):
        command.context_settings = {"obj": ctx_obj}
        main.add_command(command)


def actor(by: str | None) -> str:
    """Who moves the alias, for the history: ``--by``, else MODELFN_ACTOR, else user@host."""
    if by:
        return by
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (containers)
        user = str(os.getuid())
    return os.environ.get("MODELFN_ACTOR") or f"{user}@{socket.gethostname()}"


def _store(ctx: click.Context, store_uri: str) -> Any:
    from loader.stores import open_store

    return open_store(store_uri, ctx.obj["store_options"]())


def _describe(record: Any) -> str:
    if record is None:
        return "(none)"
    if record.candidate is None:
        return record.version
    c = record.candidate
    return f"{record.version} + {c.mode} {c.version} ({c.share:g}%)"


def _split(name: str) -> tuple[str, str | None]:
    from loader.uri import validate_name, validate_ref

    model, sep, version = name.partition("@")
    return validate_name(model), (validate_ref(version) if sep else None)


@click.command()
@click.argument("ref")
@click.option("--alias", required=True, help="Alias to move, e.g. prod.")
@click.option("--store", "store_uri", required=True, help="Store URI, e.g. gs://bucket/models.")
@click.option("--canary", type=SHARE, help="Send this percent of requests to VERSION; the primary answers the rest.")
@click.option("--shadow", type=SHARE, help="Also run VERSION on this percent of requests; its answers are discarded.")
@click.option("--finish", is_flag=True, help="Make the alias's canary or shadow its primary (REF is NAME).")
@click.option("--protected", "is_protected", is_flag=True, help="Require passed publish gates (as PROTECTED_ALIASES).")
@click.option("--by", help="Who moves the alias, for its history (default: MODELFN_ACTOR or user@host).")
@click.pass_context
def promote(
    ctx: click.Context,
    ref: str,
    alias: str,
    store_uri: str,
    canary: float | None,
    shadow: float | None,
    finish: bool,
    is_protected: bool,
    by: str | None,
) -> None:
    """Point ALIAS at NAME@VERSION, or split its traffic with a canary or shadow, or finish one."""
    from function.cli import fail
    from function.exit_codes import EXIT_USAGE
    from loader import aliases

    name, version = _split(ref)
    if sum((canary is not None, shadow is not None, finish)) > 1:
        fail("--canary, --shadow and --finish exclude each other", EXIT_USAGE)
    if finish != (version is None):
        fail("expected NAME@VERSION (or NAME with --finish)", EXIT_USAGE)
    store = _store(ctx, store_uri)
    settings = ctx.obj["settings"]()
    who = actor(by)
    if finish:
        before = aliases.current(store, name, alias)
        if before is not None and before.candidate is not None and before.candidate.mode == "canary":
            _gate(ctx, store, name, before.candidate.version, alias, settings, is_protected)
        entry = aliases.finish(store, name, alias, who)
    else:
        assert version is not None
        if shadow is None:  # a shadow never answers, so it needs no gate
            _gate(ctx, store, name, version, alias, settings, is_protected)
        if canary is not None or shadow is not None:
            if canary is not None:
                entry = aliases.start_candidate(store, name, alias, version, canary, "canary", who)
            else:
                entry = aliases.start_candidate(store, name, alias, version, shadow or 0, "shadow", who)
        else:
            entry = aliases.promote(store, name, alias, version, who)
    click.echo(f"{name}@{alias} -> {_describe(entry.record)}")


def _gate(ctx: click.Context, store: Any, name: str, version: str, alias: str, settings: Any, flag: bool) -> None:
    from function import gating
    from function.cli import fail

    try:
        gating.check_promote(store, name, version, alias, settings.protected_aliases, flag)
    except gating.GateFailed as exc:
        fail(str(exc), gating.EXIT_GATE_FAILED)


@click.command()
@click.argument("name")
@click.option("--alias", required=True, help="Alias to move back, e.g. prod.")
@click.option("--store", "store_uri", required=True, help="Store URI, e.g. gs://bucket/models.")
@click.option("--by", help="Who moves the alias, for its history (default: MODELFN_ACTOR or user@host).")
@click.pass_context
def rollback(ctx: click.Context, name: str, alias: str, store_uri: str, by: str | None) -> None:
    """Move ALIAS back to its target before the last move (again: one move further back)."""
    from loader import aliases

    model, _ = _split(name)
    entry = aliases.rollback(_store(ctx, store_uri), model, alias, actor(by))
    click.echo(f"{model}@{alias} -> {_describe(entry.record)} (was {_describe(entry.previous)})")


@click.command("history")
@click.argument("name")
@click.option("--alias", required=True, help="Alias whose moves to show.")
@click.option("--store", "store_uri", required=True, help="Store URI, e.g. gs://bucket/models.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (one object per move).")
@click.pass_context
def history_cmd(ctx: click.Context, name: str, alias: str, store_uri: str, as_json: bool) -> None:
    """Every move of ALIAS, oldest first: when, who, what, from and to."""
    from loader import aliases

    model, _ = _split(name)
    moves = aliases.history(_store(ctx, store_uri), model, alias)
    if as_json:
        click.echo(json.dumps([m.model_dump(mode="json") for m in moves]))
        return
    if not moves:
        click.echo(f"{model}@{alias}: no recorded moves")
    for m in moves:
        at = m.at.isoformat(timespec="seconds")
        click.echo(f"#{m.seq} {at} {m.by} {m.action}: {_describe(m.previous)} -> {_describe(m.record)}")
