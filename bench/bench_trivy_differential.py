"""The exception-file differential battery at scale (issue 27): generated `.trivyignore` and
`.trivyignore.yaml` files judged by the real Trivy 0.59.1 and by ifc_scan's gate, compared.

Run: make trivy && .venv/bin/python bench/bench_trivy_differential.py [--cases 20000] [--seed 1] [--jobs 3]
     [--out bench/out/trivy_disagreements.jsonl]
Prints the cases run, the disagreements by category (per format), the oddities most often in a
disagreeing file, Trivy's time per case and the wall time. --out writes every disagreeing file (bytes
as a Python literal) with both answers, one JSON object a line, for whoever fixes the reader.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ifc_scan_tests.trivy_oracle import (TRIVY_VERSION, plain_ignore_files, run_battery,  # noqa: E402
                                         trivy_binary, yaml_ignore_files)


def tag_table(outcomes, top: int = 15) -> list[str]:
    """Oddities by how often a file holding one disagrees (at least 10 files holding it)."""
    seen, bad = Counter(), Counter()
    for o in outcomes:
        seen.update(o.case.tags)
        if not o.agree:
            bad.update(o.case.tags)
    rates = sorted(((bad[t] / n, t, n) for t, n in seen.items() if n >= 10 and t), reverse=True)
    return [f"    {rate:6.1%} of {n:5d} files with {tag}" for rate, tag, n in rates[:top]]


def summary(name: str, outcomes) -> list[str]:
    bad = [o for o in outcomes if not o.agree]
    trivy = Counter(o.trivy[0] for o in outcomes)
    lines = [f"{name}: {len(outcomes)} files, {len(bad)} judged differently from Trivy {TRIVY_VERSION} "
             f"({len(bad) / max(1, len(outcomes)):.1%}); Trivy refused {trivy['refused']}, applied {trivy['ok']}"]
    for cat, n in Counter(o.category() for o in bad).most_common():
        lines.append(f"  {n:6d}  {cat}")
    if bad:
        lines += ["  oddities most often in a disagreeing file:", *tag_table(outcomes)]
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=20000, help="files in all (55%% plain, 45%% YAML)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=3, help="Trivy processes at a time")
    ap.add_argument("--out", type=Path, help="write the disagreeing files here (JSON lines)")
    args = ap.parse_args(argv)
    binary = trivy_binary()
    if binary is None:
        print("Trivy not found: run `make trivy` (or set IFC_SCAN_TRIVY)", file=sys.stderr)
        return 2
    plain_n = args.cases * 55 // 100
    t0 = time.perf_counter()
    plain = run_battery(plain_ignore_files(), plain_n, args.seed, binary, args.jobs)
    yaml = run_battery(yaml_ignore_files(), args.cases - plain_n, args.seed, binary, args.jobs)
    wall = time.perf_counter() - t0
    everything = plain + yaml
    secs = sorted(o.trivy_seconds for o in everything)
    lines = [f"Trivy {TRIVY_VERSION} at {binary}; seed {args.seed}; {args.jobs} Trivy processes at a time",
             *summary(".trivyignore", plain), *summary(".trivyignore.yaml", yaml),
             f"all: {len(everything)} files, {sum(not o.agree for o in everything)} disagreements; wall "
             f"{wall:.1f} s ({wall / len(everything) * 1000:.0f} ms a file); one Trivy run median "
             f"{statistics.median(secs) * 1000:.0f} ms, p95 {secs[int(len(secs) * 0.95)] * 1000:.0f} ms"]
    print("\n".join(lines))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w") as fh:
            for o in everything:
                if not o.agree:
                    fh.write(json.dumps({"category": o.category(), "file": o.case.name, "bytes": repr(o.case.data),
                                         "tags": sorted(o.case.tags), "trivy": _jsonable(o.trivy),
                                         "ifc_scan": _jsonable(o.ifc_scan)}) + "\n")
        print(f"disagreeing files written to {args.out}")
    return 0


def _jsonable(answer):
    return [answer[0], sorted(answer[1]) if answer[0] == "ok" else answer[1]]


if __name__ == "__main__":
    sys.exit(main())
