"""`cda companies create | rotate-key | revoke-key | list | delete`: companies and their API keys.

A key is printed once, when it is made; the log keeps only its salted hash (`company_keys`).
"""

from __future__ import annotations

import json
from dataclasses import asdict

import typer
from rich.table import Table

from api.keys import KeyTable, issue_key, revocation
from cda.cli.common import err, failing_clearly, out, produce, settings
from core.settings import Settings
from topics.identifiers import check_identifier
from topics.reads import fold_topic

app = typer.Typer(help="Companies and their API keys.", no_args_is_help=True)


def read_keys(config: Settings) -> KeyTable:
    """Every key the log knows, folded from `company_keys` to its current end."""
    table = KeyTable()
    fold_topic(config, "company_keys", table.apply, "cda-cli")
    return table




def _print_key(company: str, key: str) -> None:
    out.print(key, markup=False)
    err.print(f"the API key of {company} (shown once; only its salted hash is kept): "
              "send it as `Authorization: Bearer <key>`")


@app.command("create")
def create(company: str = typer.Argument(..., help="The new company's id.")) -> None:
    """Create a company: print its first API key."""
    with failing_clearly():
        check_identifier(company, "company")
        config = settings()
        if company in read_keys(config).companies():
            raise ValueError(f"company {company} exists; `cda companies rotate-key {company}` gives it a new key")
        issued = issue_key(company)
        produce(config, [issued.event])
    _print_key(company, issued.key)


@app.command("rotate-key")
def rotate_key(company: str = typer.Argument(..., help="The company.")) -> None:
    """Print a new key for the company and revoke every key it had."""
    with failing_clearly():
        config = settings()
        table = read_keys(config)
        if company not in table.companies():
            raise ValueError(f"no company {company}; `cda companies create {company}` makes it")
        old = table.active_keys(company)
        issued = issue_key(company, replaces=old)
        produce(config, [issued.event, *(revocation(company, k, "rotated") for k in old)])
    _print_key(company, issued.key)
    err.print(f"revoked {len(old)} earlier key(s)")


@app.command("revoke-key")
def revoke_key(company: str = typer.Argument(..., help="The company."),
               key_id: str | None = typer.Option(None, "--key-id", help="Only this key (default: all of them).")) -> None:
    """Refuse the company's keys from now on."""
    with failing_clearly():
        config = settings()
        table = read_keys(config)
        keys = table.active_keys(company)
        if key_id is not None:
            if key_id not in keys:
                raise ValueError(f"company {company} has no active key {key_id}")
            keys = [key_id]
        if not keys:
            raise ValueError(f"company {company} has no active key")
        produce(config, [revocation(company, k, "revoked by the operator") for k in keys])
    err.print(f"revoked {len(keys)} key(s) of {company}: {', '.join(keys)}")


@app.command("list")
def list_() -> None:
    """Companies with their active key ids (never keys)."""
    with failing_clearly():
        table = read_keys(settings())
    view = Table("company", "active keys")
    for company in sorted(table.companies()):
        view.add_row(company, ", ".join(table.active_keys(company)) or "(none: revoked)")
    out.print(view)


@app.command("delete")
def delete(company: str = typer.Argument(..., help="The company to forget."),
           yes: bool = typer.Option(False, "--yes", help="Confirm: this cannot be undone.")) -> None:
    """Forget a company: revoke its keys, end and tombstone its records on the compacted topics, delete its
    adapters, examples and work folders and its ClickHouse rows (`api.company_deletion`)."""
    from api.company_deletion import delete_rows, forget_company
    from projections.store import ProjectionStore

    with failing_clearly():
        check_identifier(company, "company")
        if not yes:
            raise ValueError(f"deleting {company} cannot be undone: run again with --yes")
        config = settings()
        if company not in read_keys(config).companies():
            raise ValueError(f"no company {company}")
        done = forget_company(config, None, company)
        try:
            store = ProjectionStore.from_settings(config)
            done.rows_deleted_from = delete_rows(store, company)
            store.close()
        except Exception as exc:  # noqa: BLE001 - the store held by the API's process: said, not hidden
            done.remains.append(f"ClickHouse rows: not deleted here ({type(exc).__name__}: {exc}); "
                                f"DELETE /admin/companies/{company} deletes them where the store is open")
    out.print(json.dumps(asdict(done), indent=2))
