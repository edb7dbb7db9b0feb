"""Why Trivy rows are not validated by a pydantic model: the cost side by side.

    python bench/bench_models.py [--rows 200000]

Builds N Trivy vulnerability dicts, then times (best of 3, same process, alternating) the reader's own
row builder (ifc_scan.ingest.trivy_json.vuln_row) and a pydantic model of the same fields validating
the list. run.json and jobs.json are validated by pydantic models (ifc_scan/ingest/gha_models.py):
a few per run, so their cost does not show.
"""

from __future__ import annotations

import argparse
import time

from pydantic import BaseModel, ConfigDict, TypeAdapter

from ifc_scan.ingest.trivy_json import vuln_row


class Vulnerability(BaseModel):
    model_config = ConfigDict(extra="ignore")
    VulnerabilityID: str | None = None
    PkgName: str | None = None
    PkgPath: str | None = None
    InstalledVersion: str | None = None
    FixedVersion: str | None = None
    Severity: str | None = None
    Title: str | None = None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    n = ap.parse_args().rows
    docs = [{"VulnerabilityID": f"CVE-2026-{i}", "PkgName": "openssl", "InstalledVersion": "3.0.1",
             "FixedVersion": "3.0.13", "Severity": "HIGH", "Title": "t" * 40, "CVSS": {"nvd": {"V3Score": 7.5}}}
            for i in range(n)]
    adapter = TypeAdapter(list[Vulnerability])
    best = {"vuln_row": float("inf"), "pydantic": float("inf")}
    for _ in range(3):
        t = time.perf_counter()
        [vuln_row("t", "os-pkgs", "debian", d) for d in docs]
        best["vuln_row"] = min(best["vuln_row"], time.perf_counter() - t)
        t = time.perf_counter()
        adapter.validate_python(docs)
        best["pydantic"] = min(best["pydantic"], time.perf_counter() - t)
    print(f"{n:,} rows: vuln_row {best['vuln_row']:.2f} s, pydantic validation alone {best['pydantic']:.2f} s "
          f"(ratio {best['pydantic'] / best['vuln_row']:.2f})")


if __name__ == "__main__":
    main()
