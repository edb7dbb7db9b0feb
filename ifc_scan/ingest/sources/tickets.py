"""tickets/<system>/<date taken>/<file>: GitHub issues and Jira answers, as the ticket collector saved
them. A new or changed file replaces its own rows (source_path), even when it is rejected."""

from __future__ import annotations

from pathlib import Path

from ifc_scan.ingest import tickets as ticket_reader
from ifc_scan.ingest.sources.base import Context, EvidenceSource, ReadEach, Rejection, Unit
from ifc_scan.timeutil import BadTimestamp, parse_date


def read_tickets(rel: str, abspath: str):
    """-> (date taken, [Ticket]) or a Rejection."""
    try:
        if len(rel.split("/")) < 4:
            raise BadTimestamp("no date folder")
        day = parse_date(rel.split("/")[2])
        return day, ticket_reader.parse_ticket_file(rel, Path(abspath).read_bytes().decode("utf-8-sig"))
    except BadTimestamp:
        return Rejection("ticket file not in a YYYY-MM-DD date folder (tickets/<system>/<date taken>/<file>)")
    except (ticket_reader.TicketRejected, UnicodeDecodeError) as exc:
        return Rejection(f"tickets not read: {exc}")


class Tickets(EvidenceSource):
    name = "tickets"
    unit_name = "ticket files"
    folder = "tickets/"
    kinds = ("ticket",)
    replaces = "the file's own rows"
    tables = {"tickets": ["system", "key", "title", "url", "state", "created_at", "closed_at", "updated_at",
                          "vuln_ids", "text", "snapshot_date", "source_path"]}
    read = ReadEach(read_tickets)

    @staticmethod
    def claims(rel: str) -> str | None:
        parts = rel.split("/")
        return "ticket" if parts[0] == "tickets" and len(parts) >= 3 and rel.lower().endswith((".json", ".csv")) \
            else None

    def store(self, ctx: Context, unit: Unit, reading) -> int:
        (f,) = unit.files
        ctx.batch.deletes.append(("DELETE FROM tickets WHERE source_path=?", (f.rel,)))
        if isinstance(reading, Rejection):
            ctx.record(f, "rejected", reading.reason)
            return 0
        day, tickets = reading
        for t in tickets:
            ctx.batch.add("tickets", (*t, day, f.rel))
        ctx.record(f, "ingested")
        return 0
