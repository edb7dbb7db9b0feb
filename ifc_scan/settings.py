"""Paths and settings, from environment variables with project-local defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class Settings:
    landing: str
    warehouse: str
    reports: str
    policy: str | None

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(landing=os.environ.get("IFC_SCAN_LANDING", "data/landing"),
                   warehouse=os.environ.get("IFC_SCAN_WAREHOUSE", "data/ifc_scan.duckdb"),
                   reports=os.environ.get("IFC_SCAN_REPORTS", "reports"),
                   policy=os.environ.get("IFC_SCAN_POLICY") or None)
