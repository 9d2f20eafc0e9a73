"""``walkin notify [--dry-run]``: today's reminders and digests, and what is due in
the outbox — previewed (``--dry-run``: recipients and subjects; nothing written or
sent), or put in the outbox and sent now (the worker does the same after each full
run)."""

from __future__ import annotations

import click


@click.command()
@click.option("--dry-run", is_flag=True, help="Show what would be sent today; write and send nothing.")
def notify(dry_run: bool) -> None:
    """Email reminders and notices: plan today's and send what is due (needs WALKIN_NOTIFY__ENABLED)."""
    from sync.cli import _opened

    with _opened(progress=False, read_only=dry_run) as ctx:
        if not ctx.settings.notify.enabled and not dry_run:
            raise click.ClickException("notifications are off: set WALKIN_NOTIFY__ENABLED=true")
        if dry_run:
            for line in preview(ctx):
                click.echo(line)
            return
        from .delivery import deliver, plan_today
        from .due import decided_entitlements

        with ctx.store.session_read() as session:
            names = decided_entitlements(session)
        planned = plan_today(ctx, names)
        done = deliver(ctx, "walkin notify")
        click.echo(
            f"{planned} new notices; {done.sent} sent, {done.skipped} skipped, {done.waiting} waiting, "
            f"{done.failed} failed" + (f" ({done.errors[0]})" if done.errors else "")
        )
        if done.failed:
            raise SystemExit(1)


def preview(ctx) -> list[str]:
    """What would be sent now: today's new reminders and digests, and the outbox's due notices."""
    from sqlalchemy import select

    from connector.store.models import NoticeRow
    from sync.reports import ReportContext

    from . import NoticeStatus
    from .due import daily, decided_entitlements
    from .messages import Skip, Wait, compose
    from .outbox import notice_of

    now = ctx.clock.now()
    settings = ctx.settings.notify
    report = ReportContext(ctx.mapping, ctx.target_name, ctx.today())
    lines, sendable = [], 0
    with ctx.store.session_read() as session:
        known = {
            (k, a, o, e)
            for k, a, o, e in session.execute(
                select(NoticeRow.kind, NoticeRow.about, NoticeRow.occasion, NoticeRow.entitlement)
            )
        }
        planned = [
            row
            for row in daily(session, report, settings, decided_entitlements(session), now)
            if (row["kind"], row["about"], row["occasion"], row["entitlement"]) not in known
        ]
        due = session.scalars(
            select(NoticeRow).where(NoticeRow.status == NoticeStatus.PENDING.value, NoticeRow.next_attempt_at <= now)
        ).all()
        candidates = [notice_of(r) for r in planned] + [notice_of(r) for r in due]
        for notice in candidates:
            message = compose(
                session, ctx.mapping, settings, ctx.settings.sync.person_key, ctx.target_name, notice, now
            )
            head = f"{notice.kind.value}\t{notice.about}\t{notice.occasion}"
            if isinstance(message, Skip | Wait):
                lines.append(f"{head}\t({'skipped' if isinstance(message, Skip) else 'waiting'}: {message.why})")
            else:
                sendable += 1
                lines.append(f"{head}\t{', '.join(message.to)}\t{message.subject}")
    lines.append(f"{sendable} to send")
    return lines
