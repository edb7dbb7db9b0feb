"""inventory/approvers.yaml: who may approve an exception, in which role, from when, with which signing
keys. A new file replaces the whole table (the file is the whole list)."""

from __future__ import annotations

from pathlib import Path

from ifc_scan.ingest import approvals as approvals_reader
from ifc_scan.ingest.sources.base import Context, EvidenceSource, ReadEach, Rejection, Unit


def read_approvers(rel: str, abspath: str):
    """-> [Approver] or a Rejection."""
    try:
        return approvals_reader.parse_approvers(Path(abspath).read_text(encoding="utf-8-sig"))
    except Exception as exc:      # noqa: BLE001 (RecordRejected, bad text, anything the YAML loader raises)
        return Rejection(f"approvers not read: {type(exc).__name__}: {str(exc)[:300]}")


class Approvers(EvidenceSource):
    name = "approvers"
    unit_name = "approver files"
    folder = "inventory/"
    kinds = ("approvers",)
    replaces = "the whole approvers table"
    tables = {"approvers": ["login", "role", "emails", "since", "until", "source_path", "keys"]}
    read = ReadEach(read_approvers)

    @staticmethod
    def claims(rel: str) -> str | None:
        return "approvers" if rel in ("inventory/approvers.yaml", "inventory/approvers.yml") else None

    def store(self, ctx: Context, unit: Unit, reading) -> int:
        (f,) = unit.files
        if isinstance(reading, Rejection):
            ctx.record(f, "rejected", reading.reason)
            return 0
        ctx.batch.deletes.append(("DELETE FROM approvers", ()))
        for a in reading:
            ctx.batch.add("approvers", (a.login, a.role, a.emails, a.since, a.until, f.rel, a.keys))
        ctx.record(f, "ingested")
        return 0
