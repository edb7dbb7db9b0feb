"""Ingest equivalence: two code trees must build the same warehouse, table by table, row by row.

Builds landing zones (the demo, the bad-input corpus of ifc_scan_tests/badinputs.py, the shared real-data
corpus when present), ingests each with both trees' `ingest()` (each in its own process, the tree first on
PYTHONPATH), changes the landing zones the way the kinds of evidence are replaced (a ticket file rewritten, a
snapshot folder removed, a change record changed and one removed, the inventory and approvers edited, a CI run
file changed, a scan rewritten and copied, the reader versions in derived_meta set back so every CI run and
exception file is read again) and ingests again. After each pass every table of both warehouses is dumped in
storage order (rowid) and compared; the receipts too. The demo is ingested twice: read in the ingest process,
and read by reader processes with many small batches.

Run: .venv/bin/python bench/ingest_equivalence.py --base /path/to/old/tree [--new .] [--weeks 8]
(the old tree: `git archive <commit> ifc_scan | tar -x -C DIR`). Exit 0 when every table is equal.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "real"

INGEST = """
import sys, time
import ifc_scan
from ifc_scan.ingest.runner import ingest
t = time.perf_counter()
ingest(sys.argv[1], sys.argv[2], progress=lambda m: None)
print(time.perf_counter() - t)
"""

DUMP = """
import json, sys, duckdb, ifc_scan
con = duckdb.connect(sys.argv[1], read_only=True)
tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema='main' "
                                    "AND table_type='BASE TABLE' ORDER BY table_name").fetchall()]
out = {t: [repr(r) for r in con.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall()] for t in tables}
json.dump(out, open(sys.argv[2], "w"))
"""


def run(code: str, tree: Path, *args: str, env: dict | None = None) -> str:
    e = {**os.environ, **(env or {}), "PYTHONPATH": str(tree)}
    # run in the tree: `python -c` puts the working folder first on sys.path, before PYTHONPATH
    p = subprocess.run([sys.executable, "-c", code + f"\nassert ifc_scan.__file__.startswith({str(tree)!r})", *args],
                       env=e, capture_output=True, text=True, cwd=tree)
    if p.returncode != 0:
        raise SystemExit(f"{tree}: {p.stderr[-3000:]}")
    return p.stdout.strip()


def demo_landing(d: Path, weeks: int) -> None:
    from ifc_scan.demo.generator import generate
    generate(d, weeks=weeks)


def bad_landing(d: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from ifc_scan_tests.badinputs import write_bad_inputs
    write_bad_inputs(d, huge=False)


def corpus_landing(d: Path) -> None:
    for sub in ("trivy-json", "defectdojo-trivy", "trivy-sarif", "trivy-other", "trivy-cyclonedx"):
        if (CORPUS / sub).is_dir():
            shutil.copytree(CORPUS / sub, d / "trivy" / sub)
    for i, p in enumerate(sorted((CORPUS / "trivyignore").iterdir())):
        name = ".trivyignore.yaml" if p.suffix in (".yaml", ".yml") else ".trivyignore"
        target = d / "exceptions" / f"real-{i:03d}" / "2026-03-02" / name
        target.parent.mkdir(parents=True)
        shutil.copy(p, target)


def first(d: Path, pattern: str) -> Path | None:
    return next(iter(sorted(d.glob(pattern))), None)


def append(p: Path | None, text: bytes) -> None:
    if p is not None:
        with open(p, "ab") as fh:
            fh.write(text)


def change_landing(d: Path) -> None:
    """What a second collection does to a landing zone, one change per rule of replacement."""
    append(first(d, "tickets/*/*/*"), b"\n")
    snap = first(d, "exceptions/*/*")
    if snap is not None:
        shutil.rmtree(snap)
    records = sorted(d.glob("approvals/*/*/*.json"))
    if records:
        append(records[0], b"\n")
        records[-1].unlink()
    append(first(d, "inventory/deployable.yaml"), b"# edited\n")
    append(first(d, "inventory/approvers.yaml"), b"# edited\n")
    append(first(d, "ci/github-actions/*/jobs.json"), b"\n")
    scan = first(d, "trivy/**/*.json")
    if scan is not None:
        shutil.copy(scan, scan.with_name("zz-copy-" + scan.name))
        append(scan, b"\n")
    (d / "trivy" / "late").mkdir(parents=True, exist_ok=True)
    (d / "trivy" / "late" / "broken.json").write_text('{"SchemaVersion": 2, ')


def set_readers_back(warehouse: Path) -> None:
    import duckdb
    con = duckdb.connect(str(warehouse))
    con.execute("UPDATE derived_meta SET value = '0' WHERE key IN ('ci_reader_version', 'exception_reader_version')")
    con.close()


def compare(a: Path, b: Path, label: str) -> bool:
    da, db = json.loads(a.read_text()), json.loads(b.read_text())
    ok = True
    for t in sorted(set(da) | set(db)):
        ra, rb = da.get(t), db.get(t)
        if ra == rb:
            continue
        ok = False
        same_set = ra is not None and rb is not None and sorted(ra) == sorted(rb)
        print(f"  {label}: table {t} differs ({len(ra or [])} vs {len(rb or [])} rows"
              f"{', same rows in another order' if same_set else ''})")
        for x in [r for r in (ra or []) if r not in set(rb or [])][:3]:
            print(f"    only in base: {x[:300]}")
        for x in [r for r in (rb or []) if r not in set(ra or [])][:3]:
            print(f"    only in new:  {x[:300]}")
    rows = sum(len(v) for v in da.values())
    print(f"  {label}: {len(da)} tables, {rows} rows: {'identical' if ok else 'DIFFERENT'}")
    return ok


def scenario(name: str, make, base: Path, new: Path, work: Path, env: dict | None = None) -> tuple[bool, dict]:
    landing = work / name / "landing"
    landing.mkdir(parents=True)
    make(landing)
    times: dict = {"base": [], "new": []}
    ok = True
    for n, step in enumerate(("first ingest", "after changes")):
        if n == 1:
            change_landing(landing)
        for side, tree in (("base", base), ("new", new)):
            wh = work / name / f"{side}.duckdb"
            if n == 1:
                set_readers_back(wh)
            times[side].append(float(run(INGEST, tree, str(landing), str(wh), env=env)))
            run(DUMP, tree, str(wh), str(work / name / f"{side}-{n}.json"))
        ok &= compare(work / name / f"base-{n}.json", work / name / f"new-{n}.json", f"{name}, {step}")
        receipts = [(work / name / f"{s}.duckdb.ingested.json").read_text() for s in ("base", "new")]
        if receipts[0] != receipts[1]:
            ok = False
            print(f"  {name}, {step}: receipts differ: {receipts}")
    return ok, times


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=Path, required=True, help="the old tree (holds ifc_scan/)")
    ap.add_argument("--new", type=Path, default=ROOT)
    ap.add_argument("--weeks", type=int, default=8)
    ap.add_argument("--landing", type=Path, help="also an existing landing zone (copied), e.g. bench_ingest.py's corpus")
    ap.add_argument("--only", help="one scenario by name (demo, demo-pooled-small-batches, bad-inputs, given-landing, shared-corpus)")
    a = ap.parse_args()
    pooled = {"IFC_SCAN_READERS": "2", "IFC_SCAN_PARALLEL_MIN_FILES": "1", "IFC_SCAN_PARALLEL_MIN_MB": "0",
              "IFC_SCAN_BATCH_MB": "0.05"}
    scenarios = [("demo", lambda d: demo_landing(d, a.weeks), None),
                 ("demo-pooled-small-batches", lambda d: demo_landing(d, a.weeks), pooled),
                 ("bad-inputs", bad_landing, None)]
    if a.landing:
        scenarios.append(("given-landing", lambda d: shutil.copytree(a.landing, d, dirs_exist_ok=True), None))
    if CORPUS.is_dir():
        scenarios.append(("shared-corpus", corpus_landing, None))
    else:
        print(f"shared corpus not found at {CORPUS}: skipped")
    all_ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for name, make, env in [s for s in scenarios if a.only in (None, s[0])]:
            t0 = time.perf_counter()
            ok, times = scenario(name, make, a.base.resolve(), a.new.resolve(), Path(tmp), env)
            all_ok &= ok
            print(f"{name}: {'EQUAL' if ok else 'DIFFERENT'}; ingest seconds base {times['base']}, "
                  f"new {times['new']} ({time.perf_counter() - t0:.0f} s in all)")
    print("every table identical" if all_ok else "DIFFERENCES FOUND")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
