"""inventory/deployable.yaml: the images the coverage KPI is about, and retirements."""

from __future__ import annotations

from ifc_scan.ingest.model import Rejected
from ifc_scan.lineage import lineage_of
from ifc_scan.timeutil import BadTimestamp, parse_ts
from ifc_scan.yaml_budget import load_user_yaml


def parse_inventory(text: str) -> tuple[list[tuple[str | None, str]], list[tuple[str, object]]]:
    """-> ([(name, lineage)], [(lineage, retired_at)])."""
    doc = load_user_yaml(text, "inventory", Rejected, "a mapping with 'deployable' and optional 'retired' lists")
    deployable, retired = [], []
    for key in ("deployable", "retired"):
        if not isinstance(doc.get(key) or [], list):
            raise Rejected(f"'{key}' must be a list, not {type(doc[key]).__name__}")
    for i, item in enumerate(doc.get("deployable") or []):
        if not isinstance(item, dict) or not (item.get("lineage") or item.get("name")):
            raise Rejected(f"deployable entry {i + 1} has no lineage")
        given = item.get("lineage") or item.get("name")
        lin = lineage_of(given) if isinstance(given, str) else None
        if lin is None:
            raise Rejected(f"deployable entry {i + 1}: {str(given)[:80]!r} is not an image reference")
        deployable.append((str(item.get("name") or lin.rsplit("/", 1)[-1]), lin))
    for i, item in enumerate(doc.get("retired") or []):
        if not isinstance(item, dict) or not item.get("lineage") or not item.get("at"):
            raise Rejected(f"retired entry {i + 1} needs 'lineage' and 'at'")
        at = item["at"]
        try:
            at = parse_ts(at if isinstance(at, str) else at.isoformat().replace("+00:00", "Z"))
        except (BadTimestamp, AttributeError) as exc:
            raise Rejected(f"retired entry {i + 1}: 'at' is not a timestamp ({exc})") from None
        lin = lineage_of(item["lineage"]) if isinstance(item["lineage"], str) else None
        if lin is None or at is None:
            raise Rejected(f"retired entry {i + 1}: needs an image reference and a time")
        retired.append((lin, at))
    return deployable, retired
