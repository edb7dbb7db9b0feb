"""inventory/deployable.yaml: the images the coverage KPI is about, and retirements. A new file replaces
both tables whole (the file is the whole inventory)."""

from __future__ import annotations

from pathlib import Path

from ifc_scan.ingest.inventory import parse_inventory
from ifc_scan.ingest.sources.base import Context, EvidenceSource, ReadEach, Rejection, Unit


def read_inventory(rel: str, abspath: str):
    """-> (deployable [(name, lineage)], retired [(lineage, at)]) or a Rejection."""
    try:
        return parse_inventory(Path(abspath).read_text(encoding="utf-8-sig"))
    except Exception as exc:      # noqa: BLE001 (Rejected, bad text, or anything the YAML loader raises)
        return Rejection(f"inventory not read: {type(exc).__name__}: {str(exc)[:300]}")


class Inventory(EvidenceSource):
    name = "inventory"
    unit_name = "inventory files"
    folder = "inventory/"
    kinds = ("inventory",)
    replaces = "the whole inventory (both tables)"
    tables = {"inventory_deployable": ["name", "lineage", "source_path"],
              "inventory_retired": ["lineage", "retired_at", "source_path"]}
    read = ReadEach(read_inventory)

    @staticmethod
    def claims(rel: str) -> str | None:
        return "inventory" if rel in ("inventory/deployable.yaml", "inventory/deployable.yml") else None

    def store(self, ctx: Context, unit: Unit, reading) -> int:
        (f,) = unit.files
        if isinstance(reading, Rejection):
            ctx.record(f, "rejected", reading.reason)
            return 0
        deployable, retired = reading
        ctx.batch.deletes += [("DELETE FROM inventory_deployable", ()), ("DELETE FROM inventory_retired", ())]
        for name, lin in deployable:
            ctx.batch.add("inventory_deployable", (name, lin, f.rel))
        for lin, at in retired:
            ctx.batch.add("inventory_retired", (lin, at, f.rel))
        ctx.record(f, "ingested")
        return 0
