"""The main job: demo landing zone if there is none, then ingest, lifecycle and every complete week,
materialised through Dagster on the persistent instance ($DAGSTER_HOME), so the UI shows the runs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dagster as dg

from ifc_scan.settings import Settings


def run_all(settings: Settings, make_demo: bool = True) -> int:
    from ifc_scan.definitions import defs
    from ifc_scan.demo.generator import generate
    from ifc_scan.defs.resources import weekly_partitions

    landing = Path(settings.landing)
    if make_demo and not (landing.is_dir() and any(landing.iterdir())):
        print(f"writing the demo landing zone to {landing}", file=sys.stderr)
        generate(landing)
    if not os.environ.get("DAGSTER_HOME"):
        home = Path(".dagster_home").resolve()
        home.mkdir(exist_ok=True)
        os.environ["DAGSTER_HOME"] = str(home)
    home = Path(os.environ["DAGSTER_HOME"])
    if not (home / "dagster.yaml").exists() and Path("dagster.yaml").is_file():
        (home / "dagster.yaml").write_text(Path("dagster.yaml").read_text())
    instance = dg.DagsterInstance.get()
    d = defs()
    r1 = d.resolve_job_def("ingest_job").execute_in_process(instance=instance, raise_on_error=False)
    if not r1.success:
        print("ingest failed; see the Dagster run " + r1.run_id, file=sys.stderr)
        return 1
    keys = weekly_partitions.get_partition_keys()
    if not keys:
        print("no complete week yet", file=sys.stderr)
        return 0
    r2 = d.resolve_job_def("weekly_job").execute_in_process(
        instance=instance, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]})
    print(f"{len(keys)} weeks ({keys[0]} .. {keys[-1]}) materialised; reports in {settings.reports}/, "
          f"index {settings.reports}/index.html; Dagster runs {r1.run_id}, {r2.run_id}", file=sys.stderr)
    return 0 if r2.success else 1
