"""What every scan reader returns: one ParsedScan per report (a k8s report yields several)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")


class Rejected(Exception):
    """The file is not something this reader ingests; the message is shown to people as is."""


@dataclass
class ParsedScan:
    format: str
    artifact_name: str | None = None
    artifact_type: str | None = None
    lineage: str | None = None
    image_id: str | None = None
    repo_digests: list[str] = field(default_factory=list)
    repo_tags: list[str] = field(default_factory=list)
    created_at: datetime | None = None
    schema_version: int | None = None
    trivy_version: str | None = None
    image_created: datetime | None = None
    os_family: str | None = None
    os_name: str | None = None
    lists_suppressed: bool = False
    # rows, column order as in schema.sql after scan_id
    vulnerabilities: list[tuple] = field(default_factory=list)
    misconfigurations: list[tuple] = field(default_factory=list)
    secrets: list[tuple] = field(default_factory=list)
    licenses: list[tuple] = field(default_factory=list)


def norm_severity(value) -> str:
    s = str(value or "UNKNOWN").upper()
    return s if s in SEVERITIES else "UNKNOWN"


def as_text(value, limit: int = 2000) -> str | None:
    """Untrusted scan text: kept verbatim (escaping happens at output), bounded in size."""
    if value is None:
        return None
    if not isinstance(value, str):
        value = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return value[:limit]


def as_int(value) -> int | None:
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None
