"""One more night: what the nightly run costs with a quarter of history against a year (issue 28).

    python bench/bench_night.py [--images 100] [--days 91 --days 364] [--keep DIR]

For each history length, a landing zone from bench/gen_org.py minus its last day is ingested, its
lifecycle built and its last week published with its trend window (the state the night finds). Then the last day arrives (each image's nightly registry
scan, the CI runs of that day) and the nightly work runs as the Dagster sensor's ingest_job does, each
step in its own process, timed with its peak memory (bench/measure.py):
- `ifc-scan ingest` (warehouse_ingest);
- the lifecycle brought up to date (finding_lifecycle: derive_lifecycle, incremental);
- `ifc-scan report --week LAST` (the week the night falls in: its figures and its report);
and, for comparison on the same warehouse, the lifecycle rebuilt from all history (derive_lifecycle
full=True, what every night cost before). Prints one Markdown row per history length.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import measure  # noqa: E402

from ifc_scan_tests.arrivals import arrival_units, deliver, unit_day  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LIFECYCLE = ("import sys, json; from ifc_scan.lifecycle.store import derive_lifecycle; from ifc_scan.policy import "
             "load_policy; from ifc_scan.warehouse.db import connect\n"
             "with connect(sys.argv[1]) as con: c = derive_lifecycle(con, load_policy(), full=sys.argv[2] == 'full')\n"
             "print(json.dumps({**c.as_dict(), 'earliest_change': str(c.earliest_change)}))")


def timed(cmd: list[str], log: Path) -> tuple[float, int]:
    return measure.timed(cmd, log, cwd=ROOT)


def run(images: int, days: int, findings: int, work: Path, keep: bool = False) -> dict:
    src, land, wh, rep = work / "source", work / "landing", work / "w.duckdb", work / "reports"
    if not (work / "source.complete").exists():    # a kept source is reused (same generator, same seed)
        shutil.rmtree(src, ignore_errors=True)
        subprocess.run([sys.executable, str(ROOT / "bench" / "gen_org.py"), str(src), "--images", str(images),
                        "--days", str(days), "--findings", str(findings)], capture_output=True, check=True)
        (work / "source.complete").touch()
    for old in (land, rep):
        shutil.rmtree(old, ignore_errors=True)
    for old in work.glob("w.duckdb*"):
        old.unlink()
    units = arrival_units(src)
    last_day = max(unit_day(src, u) for u in units)
    night = [u for u in units if unit_day(src, u) == last_day]
    land.mkdir(parents=True)
    deliver(src, land, [u for u in units if unit_day(src, u) != last_day])
    cli = [str(BIN / "ifc-scan")]
    py = [sys.executable, "-c", LIFECYCLE, str(wh)]
    setup = timed(cli + ["ingest", "--landing", str(land), "--warehouse", str(wh)], work / "setup-ingest.log")
    setup_lc = timed(py + ["full"], work / "setup-lifecycle.log")
    week_cmd = cli + ["report", "--landing", str(land), "--warehouse", str(wh), "--reports", str(rep), "--week",
                      _last_week(last_day)]
    timed(week_cmd, work / "setup-week.log")     # the weeks of its trend window, published before the night
    if keep:        # the state the night finds, kept for profiling a step on a copy
        shutil.rmtree(work / "pre-night", ignore_errors=True)
        (work / "pre-night").mkdir()
        shutil.copy(wh, work / "pre-night" / wh.name)
        shutil.copytree(rep, work / "pre-night" / rep.name)
    deliver(src, land, night)
    ingest = timed(cli + ["ingest", "--landing", str(land), "--warehouse", str(wh)], work / "ingest.log")
    lifecycle = timed(py + ["incremental"], work / "lifecycle.log")
    counts = json.loads((work / "lifecycle.log").read_text().splitlines()[-1])
    week = timed(week_cmd, work / "week.log")
    full = timed(py + ["full"], work / "full.log")
    return {"images": images, "days": days, "night_files": sum(1 for u in night for p in [src / u] for _ in
                                                               (p.rglob("*") if p.is_dir() else [p])),
            "setup_ingest_s": round(setup[0], 1), "setup_lifecycle_s": round(setup_lc[0], 1),
            "ingest_s": round(ingest[0], 2), "ingest_mb": ingest[1], "lifecycle_s": round(lifecycle[0], 2),
            "lifecycle_mb": lifecycle[1], "week_s": round(week[0], 2), "week_mb": week[1],
            "night_s": round(ingest[0] + lifecycle[0] + week[0], 2), "full_lifecycle_s": round(full[0], 2),
            "full_lifecycle_mb": full[1], "extended": counts["lineages_extended"], "rebuilt": counts["lineages_rebuilt"]}


def _last_week(day: str) -> str:
    from datetime import date, timedelta
    d = date.fromisoformat(day)
    monday = d - timedelta(days=d.weekday())
    y, w, _ = monday.isocalendar()
    return f"{y}-W{w:02d}"


def main(argv=None) -> int:
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--images", type=int, default=100)
    a.add_argument("--days", type=int, action="append")
    a.add_argument("--findings", type=int, default=60)
    a.add_argument("--keep", type=Path)
    args = a.parse_args(argv)
    print("| images | history days | night: ingest s (MB) | lifecycle, incremental s (MB) | the week s (MB) "
          "| night total s | lifecycle rebuilt from all history s (MB) | lineages extended / rebuilt |")
    print("|---|---|---|---|---|---|---|---|")
    for days in args.days or [91, 364]:
        base = args.keep or Path(tempfile.mkdtemp(prefix="ifc-night-"))
        work = base / f"{args.images}img-{days}d"
        work.mkdir(parents=True, exist_ok=True)
        try:
            r = run(args.images, days, args.findings, work, keep=bool(args.keep))
        finally:
            if not args.keep:
                shutil.rmtree(base, ignore_errors=True)
        print(f"| {r['images']} | {r['days']} | {r['ingest_s']} ({r['ingest_mb']}) | {r['lifecycle_s']} "
              f"({r['lifecycle_mb']}) | {r['week_s']} ({r['week_mb']}) | **{r['night_s']}** | {r['full_lifecycle_s']} "
              f"({r['full_lifecycle_mb']}) | {r['extended']} / {r['rebuilt']} |", flush=True)
        print(json.dumps(r), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
