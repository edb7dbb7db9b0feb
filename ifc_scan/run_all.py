"""The main job: demo landing zone if there is none, then ingest, lifecycle and every complete week,
materialised through Dagster on the persistent instance ($DAGSTER_HOME), so the UI shows the runs.

It prints for a user, not for a Dagster developer: one line per week (week, report written /
unchanged / revised, verdict) and a last line with the latest week's verdict, its failing controls and
the report's path. `--verbose` brings back Dagster's own DEBUG log and warnings.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from pathlib import Path

import dagster as dg

from ifc_scan.progress import waiting
from ifc_scan.settings import Settings


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def _run_config(verbose: bool) -> dict:
    return {} if verbose else {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@contextlib.contextmanager
def _quiet(verbose: bool):
    if verbose:
        yield
        return
    with warnings.catch_warnings():
        for category in (dg.BetaWarning, dg.PreviewWarning, DeprecationWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        yield


def _partition_metadata(result, asset: str) -> dict[str, dict]:
    out = {}
    for ev in result.get_asset_materialization_events():
        m = ev.materialization
        if m.asset_key.to_user_string() == asset and m.partition:
            out[m.partition] = {k: getattr(v, "value", v) for k, v in m.metadata.items()}
    return out


def run_all(settings: Settings, make_demo: bool = True, verbose: bool = False) -> int:
    from ifc_scan.defs.resources import weekly_partitions
    from ifc_scan.definitions import defs
    from ifc_scan.demo.generator import generate

    landing = Path(settings.landing)
    if make_demo and not (landing.is_dir() and any(landing.iterdir())):
        print(f"writing the demo landing zone to {landing}", file=sys.stderr)
        generate(landing, story=True)     # the weeks tell a story: each verdict, and why (ifc_scan/demo/story.py)
    if not os.environ.get("DAGSTER_HOME"):
        home = Path(".dagster_home").resolve()
        home.mkdir(exist_ok=True)
        os.environ["DAGSTER_HOME"] = str(home)
    home = Path(os.environ["DAGSTER_HOME"])
    if not (home / "dagster.yaml").exists() and Path("dagster.yaml").is_file():
        (home / "dagster.yaml").write_text(Path("dagster.yaml").read_text())
    with _quiet(verbose):
        instance = dg.DagsterInstance.get()
        d = defs()
        with waiting("ingest and lifecycle (Dagster ingest_job)", _err):
            r1 = d.resolve_job_def("ingest_job").execute_in_process(instance=instance, raise_on_error=False,
                                                                    run_config=_run_config(verbose))
        if not r1.success:
            print(f"ingest failed; see the Dagster run {r1.run_id} (make ui)", file=sys.stderr)
            return 1
        ing = next((e.materialization.metadata for e in r1.get_asset_materialization_events()
                    if e.materialization.asset_key.to_user_string() == "warehouse_ingest"), {})
        print(f"ingest: {ing['files_seen'].value} files in {landing}, {ing['new_files'].value} new, "
              f"{ing['rejected'].value} rejected (Dagster run {r1.run_id[:8]})")
        keys = weekly_partitions.get_partition_keys()
        if not keys:
            print("no complete week yet: nothing to report")
            return 0
        # the weeks' own progress (computed, written, time left) is in the run's log: make ui, or --verbose
        with waiting(f"{len(keys)} weeks (Dagster weekly_job)", _err):
            r2 = d.resolve_job_def("weekly_job").execute_in_process(
                instance=instance, raise_on_error=False, run_config=_run_config(verbose),
                tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]})
    if not r2.success:
        print(f"weekly run failed; see the Dagster run {r2.run_id} (make ui)", file=sys.stderr)
        return 1
    kpis = _partition_metadata(r2, "weekly_kpis")
    reports = _partition_metadata(r2, "weekly_report")
    counts: dict[str, int] = {}
    for key in keys:
        k, r = kpis.get(key, {}), reports.get(key, {})
        counts[r.get("status", "?")] = counts.get(r.get("status", "?"), 0) + 1
        failing = k.get("failing_controls") or []
        print(f"{k.get('iso_week', key)}  {r.get('status', '?'):9} r{r.get('revision', '?'):<2} {k.get('verdict', '?')}"
              + (f" ({len(failing)} failing: {', '.join(failing)})" if failing else ""))
    last_k, last_r = kpis.get(keys[-1], {}), reports.get(keys[-1], {})
    failing = last_k.get("failing_controls") or []
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    print(f"{len(keys)} weeks ({summary}); index {Path(settings.reports).resolve() / 'index.html'}; "
          f"Dagster runs {r1.run_id[:8]}, {r2.run_id[:8]} (make ui)")
    print(f"latest week {last_k.get('iso_week', keys[-1])}: {last_k.get('verdict', '?')}"
          + (f" - failing: {', '.join(failing)}" if failing else "")
          + f"; report {last_r.get('report_path', '?')}")
    return 0
