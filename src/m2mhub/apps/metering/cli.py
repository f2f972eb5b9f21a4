"""``m2mhub metering ...`` and ``m2mhub billing ...``: declare meters from a YAML file,
run billing, list invoices, exchange SEPA files with the bank.

Like the other management commands they work on the configured database, with or
without a running server; a webhook queued here is sent by a server's scheduler.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
import typer
from rich.markup import escape
from rich.table import Table

from m2mhub.apps.metering.declarations import apply_declarations, parse_declarations
from m2mhub.apps.metering.models import (
    InvoiceStatus,
)
from m2mhub.apps.metering.service import MeteringService
from m2mhub.core.errors import PayloadError
from m2mhub.registry.service import Registry
from m2mhub.store import Store

metering_app = typer.Typer(help="Meters, supply points, accounts and tariffs (docs/metering.md).")
billing_app = typer.Typer(help="Billing runs, invoices and SEPA payments (docs/metering.md).")

TenantOpt = Annotated[
    str, typer.Option("--tenant", "-t", envvar="M2MHUB_TENANT", help="Tenant slug.")
]


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _service(store: Store) -> MeteringService:
    from m2mhub.actions import DeliveryWorker, WebhookService
    from m2mhub.audit import AuditLog
    from m2mhub.cli import _settings

    settings = _settings()
    audit = AuditLog(store)
    worker = DeliveryWorker(store, settings, holder=f"cli:{getpass.getuser()}", audit=audit)
    return MeteringService(
        store,
        holder=f"cli:{getpass.getuser()}",
        audit=audit,
        webhooks=WebhookService(store, settings, worker),
    )


@metering_app.command("apply")
def metering_apply(
    file: Annotated[Path, typer.Argument(help="A YAML file of meters, accounts, tariffs, links.")],
    tenant: TenantOpt = "default",
) -> None:
    """Create the meters, supply points, accounts, tariffs and links a file declares.

    Entries that exist are kept as they are (tariffs are replaced), so the file can
    be applied again after adding to it. The file's ``tenant:`` wins over --tenant.
    """
    from m2mhub.cli import _fail, _run, out

    try:
        spec = parse_declarations(file.read_text())
    except OSError as exc:
        _fail(f"{file}: {exc.strerror}")
    except PayloadError as exc:
        _fail(f"{file}: {exc.message}")

    async def work(store: Store, registry: Registry) -> list[str]:
        found = await registry.tenant(spec.tenant or tenant)
        return await apply_declarations(_service(store), found.id, spec, file.parent)

    for line in _run(work):
        out.print(escape(line))


#: Above this many accounts, the summary table lists only the accounts that need a look.
_TABLE_ACCOUNTS: Final = 100


def _helper_command(period: str, tenant: str, run_id: int, now: int, chunk: int) -> list[str]:
    """The command of a process that helps billing run ``run_id`` (``--join``)."""
    return [
        *(sys.executable, "-m", "m2mhub", "billing", "run", "--period", period),
        *("--tenant", tenant, "--join", str(run_id), "--now", str(now), "--chunk", str(chunk)),
    ]


async def _helper(command: list[str]) -> AsyncIterator[tuple[int, list[dict[str, Any]]]]:
    """Run a helper process and yield the chunks it reports on its standard output."""
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, limit=64 * 2**20
    )
    try:
        assert process.stdout is not None
        async for line in process.stdout:
            if line.startswith(b'{"chunk"'):
                report = msgspec.json.decode(line)
                yield report["chunk"], report["entries"]
    except BaseException:
        process.kill()
        await process.wait()
        raise
    if await process.wait() != 0:
        raise RuntimeError(f"billing helper exited with status {process.returncode}")


@billing_app.command("run")
def billing_run(
    period: Annotated[
        str, typer.Option(help="A month (2026-10) or days (2026-10-01..2026-10-15).")
    ],
    account: Annotated[str | None, typer.Option(help="Only this account number.")] = None,
    tenant: TenantOpt = "default",
    workers: Annotated[
        int,
        typer.Option(min=1, help="Processes that bill the accounts together (one per CPU core)."),
    ] = 1,
    join: Annotated[int | None, typer.Option(hidden=True)] = None,
    now: Annotated[int | None, typer.Option(hidden=True)] = None,
    chunk: Annotated[int, typer.Option(hidden=True)] = 1,
) -> None:
    """Bill a period: new invoices, nothing where nothing changed, a credit note and a new
    invoice where the data changed."""
    from m2mhub.cli import _run, out

    if join is not None and now is not None:
        # A helper of a run with --workers: report each chunk billed, as a line of JSON.
        async def help_run(store: Store, registry: Registry) -> None:
            found = await registry.tenant(tenant)
            service = _service(store)
            async for index, entries in service.join_billing(
                found.id, join, now=now, chunk_accounts=chunk
            ):
                report = msgspec.json.encode({"chunk": index, "entries": entries})
                sys.stdout.buffer.write(report + b"\n")
                sys.stdout.buffer.flush()

        _run(help_run)
        return

    def start_helper(
        run_id: int, at: int, size: int
    ) -> AsyncIterator[tuple[int, list[dict[str, Any]]]]:
        return _helper(_helper_command(period, tenant, run_id, at, size))

    async def work(store: Store, registry: Registry) -> Any:
        found = await registry.tenant(tenant)
        return await _service(store).run_billing(
            found.id,
            period,
            account=account,
            actor=_actor(),
            helpers=workers - 1,
            start_helper=start_helper,
        )

    run = _run(work)
    table = Table("account", "outcome", "invoices", "credit notes", "unchanged", "held", "notes")
    outcomes: dict[str, int] = {}
    for entry in run.summary:
        outcomes[entry["outcome"]] = outcomes.get(entry["outcome"], 0) + 1
        if len(run.summary) > _TABLE_ACCOUNTS and entry["outcome"] in ("issued", "unchanged"):
            continue
        table.add_row(
            escape(entry["account"]),
            entry["outcome"],
            ", ".join(entry.get("issued", [])),
            ", ".join(entry.get("credit_notes", [])),
            ", ".join(entry.get("unchanged", [])),
            ", ".join(h["reference"] for h in entry.get("held", [])),
            escape("; ".join(entry.get("notes", [])) or entry.get("message", "")),
        )
    out.print(f"billing run {run.id} for {escape(run.period)}: {run.status}")
    if len(run.summary) <= _TABLE_ACCOUNTS or table.row_count:
        out.print(table)
    if len(run.summary) > _TABLE_ACCOUNTS:
        out.print(", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items())))
    for entry in run.summary:
        for held in entry.get("held", []):
            # Whole lines, so a reference is never wrapped by the table.
            out.print(f"held {escape(held['reference'])}: {escape(held['reason'])}", soft_wrap=True)
    if any(entry["outcome"] == "error" for entry in run.summary):
        raise typer.Exit(1)


@billing_app.command("usage")
def billing_usage(
    period: Annotated[
        str, typer.Option(help="A month (2026-10) or days (2026-10-01..2026-10-15).")
    ],
    account: Annotated[str | None, typer.Option(help="Only this account number.")] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="File to write (default: standard output)."),
    ] = None,
    tenant: TenantOpt = "default",
) -> None:
    """The usage a billing run of the period counts, per meter and register, as a JSON
    array of CloudEvents (application/cloudevents-batch+json), e.g. for OpenMeter."""
    from m2mhub.cli import _run, out

    async def work(store: Store, registry: Registry) -> Any:
        found = await registry.tenant(tenant)
        return await _service(store).usage_events(found.id, period, account=account)

    events = _run(work)
    body = msgspec.json.format(msgspec.json.encode(events), indent=2) + b"\n"
    if output is None:
        typer.echo(body.decode(), nl=False)
        return
    output.write_bytes(body)
    out.print(f"wrote {escape(str(output))}: {len(events)} usage events")


@billing_app.command("invoices")
def billing_invoices(
    period: Annotated[str | None, typer.Option(help="Only this period.")] = None,
    status: Annotated[str, typer.Option(help="Comma-separated statuses; empty for all.")] = "",
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    tenant: TenantOpt = "default",
) -> None:
    """Invoices and credit notes, newest first."""
    from m2mhub.cli import _fail, _run, out

    try:
        statuses = [InvoiceStatus(s) for s in status.split(",") if s]
    except ValueError:
        _fail(f"--status {status!r}: use held, open, paid, failed, overdue or credited")

    async def work(store: Store, registry: Registry) -> Any:
        found = await registry.tenant(tenant)
        return await _service(store).storage.list_invoices(
            found.id, period=period, status=statuses, limit=limit
        )

    table = Table("number", "kind", "account", "period", "total", "status", "due")
    for invoice in _run(work):
        table.add_row(
            invoice.number,
            invoice.kind.value,
            escape(invoice.account),
            escape(invoice.period),
            f"{invoice.total} {invoice.currency}",
            invoice.status.value,
            invoice.due_date.isoformat(),
        )
    out.print(table)


@billing_app.command("export-sepa")
def billing_export_sepa(
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="File to write (default: <message id>.xml).")
    ] = None,
    tenant: TenantOpt = "default",
) -> None:
    """Write a pain.008 file collecting the open direct-debit invoices not yet collected."""
    from m2mhub.cli import _run, out

    async def work(store: Store, registry: Registry) -> Any:
        found = await registry.tenant(tenant)
        return await _service(store).export_sepa(found.id, actor=_actor())

    file, numbers = _run(work)
    target = output or Path(f"{file.message_id}.xml")
    target.write_bytes(file.xml)
    out.print(
        f"wrote {target}: {file.number_of_transactions} collections, {file.control_sum} EUR "
        f"({', '.join(numbers)})"
    )


@billing_app.command("import-status")
def billing_import_status(
    file: Annotated[Path, typer.Argument(help="A pain.002 or camt.054 file from the bank.")],
    tenant: TenantOpt = "default",
) -> None:
    """Mark invoices paid or failed from a bank status file (reading it twice is harmless)."""
    from m2mhub.cli import _fail, _run, out

    try:
        document = file.read_bytes()
    except OSError as exc:
        _fail(f"{file}: {exc.strerror}")

    async def work(store: Store, registry: Registry) -> Any:
        found = await registry.tenant(tenant)
        return await _service(store).import_status(found.id, document, actor=_actor())

    result = _run(work)
    out.print(f"{result.kind} {escape(result.message_id)}")
    for label, numbers in (
        ("paid", result.paid),
        ("failed", result.failed),
        ("pending", result.pending),
        ("unknown", result.unknown),
    ):
        if numbers:
            out.print(f"{label}: {', '.join(numbers)}")


@billing_app.command("release")
def billing_release(
    reference: Annotated[str, typer.Argument(help="The held invoice, e.g. HELD-000001.")],
    tenant: TenantOpt = "default",
) -> None:
    """Issue a held invoice as it is: it gets its number and becomes open and collectable.

    To bill corrected data instead, fix the reads or add edits and run the period again.
    """
    from m2mhub.cli import _run, out

    async def work(store: Store, registry: Registry) -> Any:
        found = await registry.tenant(tenant)
        return await _service(store).release(found.id, reference, actor=_actor())

    invoice = _run(work)
    out.print(
        f"released {escape(reference)} as {escape(invoice.number)}: {invoice.total} "
        f"{invoice.currency}, due {invoice.due_date}, {invoice.status}"
    )


@billing_app.command("mark-overdue")
def billing_mark_overdue(tenant: TenantOpt = "default") -> None:
    """Mark open and failed invoices past their due date (plus grace days) overdue."""
    from m2mhub.cli import _run, out

    async def work(store: Store, registry: Registry) -> list[str]:
        found = await registry.tenant(tenant)
        return await _service(store).mark_overdue(found.id, actor=_actor())

    marked = _run(work)
    out.print(f"overdue: {', '.join(marked) if marked else 'none'}")
