"""Dagster entry point: every Dagster object is discovered in the ifc_scan/defs/ folder (one module per
domain: collect, ingest, lifecycle, weekly, resources)."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).resolve().parent.parent)
