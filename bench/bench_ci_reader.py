"""The CI log reader of two commits side by side on the same run folders (ratio, not absolute time).

    python bench/bench_ci_reader.py [--base COMMIT] [--runs DIR] [--rounds N]

Checks out COMMIT (default: the parent of the CI reader rewrite, 204c744) into a temporary git
worktree, then reads every run folder under DIR/ci/github-actions with each tree in turn, alternating
for N rounds, each in a fresh process, and prints lines read per second and the ratio. DIR defaults to
a landing zone built from the shared corpus's real job logs (40 runs of its 9 logs), or set --runs to
the demo landing zone (data/landing).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "real" / "github-actions"
TIMER = r"""
import json, sys, time, pathlib
sys.path.insert(0, sys.argv[1])
from ifc_scan.ingest.github_actions import read_run_folder, load_patterns
p = load_patterns()
runs = sorted((pathlib.Path(sys.argv[2]) / "ci" / "github-actions").iterdir())
t = time.perf_counter(); n = 0
for r in runs:
    n += len(read_run_folder(r, p).events)
print(json.dumps({"seconds": time.perf_counter() - t, "events": n, "runs": len(runs)}))
"""


def corpus_runs(dest: Path, copies: int = 40) -> Path:
    logs = sorted(CORPUS.glob("joblog__*.log"))
    if not logs:
        sys.exit(f"no job logs in {CORPUS}: give --runs")
    for i in range(1, copies + 1):
        d = dest / "ci" / "github-actions" / str(i)
        (d / "logs").mkdir(parents=True)
        (d / "run.json").write_text(json.dumps({"id": i}))
        for j, log in enumerate(logs):
            shutil.copy(log, d / "logs" / f"{j}_job{j}.txt")
    return dest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="204c744")
    ap.add_argument("--runs")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = tmp / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), a.base], check=True,
                       capture_output=True)
        try:
            runs = Path(a.runs) if a.runs else corpus_runs(tmp / "landing")
            lines = sum(sum(1 for _ in p.open("rb")) for p in (runs / "ci" / "github-actions").rglob("*.txt"))
            times = {"base": [], "this": []}
            for _ in range(a.rounds):
                for name, tree in (("base", base), ("this", ROOT)):
                    out = subprocess.run([sys.executable, "-c", TIMER, str(tree), str(runs)], capture_output=True,
                                         text=True, check=True)
                    r = json.loads(out.stdout)
                    times[name].append(r["seconds"])
                    print(f"{name}: {r['runs']} runs, {lines:,} lines, {r['events']} events, {r['seconds']:.2f} s")
            best = {k: min(v) for k, v in times.items()}
            print(f"best of {a.rounds}: base {best['base']:.2f} s ({lines / best['base']:,.0f} lines/s), this "
                  f"{best['this']:.2f} s ({lines / best['this']:,.0f} lines/s), ratio {best['this'] / best['base']:.2f}")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)


if __name__ == "__main__":
    main()
