"""An org-scale landing zone for the benchmarks: N deployable images, nightly registry scans for D days,
a weekly CI run per image (BuildKit build, trivy-action scan artifact, push, production deploy), churn
in the findings on every new image, and a monthly global .trivyignore snapshot.

    python bench/gen_org.py OUT --images 100 --days 365 --findings 60 [--seed 1]

Deterministic for a seed. Written with orjson (about 40k files a minute on this machine).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from datetime import datetime, timedelta
from pathlib import Path

import orjson

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
SEV_WEIGHTS = (3, 17, 45, 30, 5)


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def z(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class Image:
    def __init__(self, rng: random.Random, idx: int, n_findings: int):
        self.rng, self.idx = rng, idx
        self.lineage = f"ghcr.io/bench-org/svc-{idx:04d}"
        self.version = 0
        self.next_cve = 0
        self.findings = [self._new_finding() for _ in range(n_findings)]

    def _new_finding(self) -> dict:
        self.next_cve += 1
        pkg = f"lib{self.rng.randrange(400)}"
        sev = self.rng.choices(SEVERITIES, SEV_WEIGHTS)[0]
        cve = f"CVE-20{self.rng.randrange(18, 27)}-{self.idx:04d}{self.next_cve:05d}"
        return {"VulnerabilityID": cve, "PkgName": pkg, "InstalledVersion": "1.0.0",
                "FixedVersion": "1.0.1" if self.rng.random() < 0.7 else None, "Severity": sev,
                "Title": f"{pkg}: issue {cve}", "PkgIdentifier": {"PURL": f"pkg:deb/debian/{pkg}@1.0.0"},
                "PrimaryURL": f"https://avd.aquasec.com/nvd/{cve.lower()}"}

    def new_build(self) -> None:
        """A new image: about 10 % of findings fixed, as many new ones."""
        self.version += 1
        keep = [f for f in self.findings if self.rng.random() > 0.1]
        self.findings = keep + [self._new_finding() for _ in range(len(self.findings) - len(keep))]

    @property
    def tag(self) -> str:
        return f"{self.lineage}:v{self.version}"

    @property
    def cfg(self) -> str:
        return digest(f"cfg-{self.lineage}-{self.version}")

    @property
    def man(self) -> str:
        return digest(f"man-{self.lineage}-{self.version}")

    def report(self, created: datetime | None, registry: bool) -> bytes:
        vulns = [{k: v for k, v in f.items() if v is not None} for f in self.findings]
        doc = {"SchemaVersion": 2, "ArtifactName": self.tag, "ArtifactType": "container_image",
               "Metadata": {"ImageID": self.cfg, "RepoTags": [self.tag],
                            "RepoDigests": [f"{self.lineage}@{self.man}"] if registry else [],
                            "ImageConfig": {"created": "2026-01-01T00:00:00Z"}},
               "Results": [{"Target": f"{self.tag} (debian 12.5)", "Class": "os-pkgs", "Type": "debian",
                            "Vulnerabilities": vulns}]}
        if created is not None:
            doc["CreatedAt"] = z(created)
        return orjson.dumps(doc)


def ci_run(root: Path, run_id: int, img: Image, t: datetime) -> None:
    d = root / "ci" / "github-actions" / str(run_id)
    (d / "artifacts").mkdir(parents=True)
    (d / "artifacts" / "trivy-results.json").write_bytes(img.report(None, registry=False))
    scan_t, push_t, deploy_t = t + timedelta(minutes=3), t + timedelta(minutes=4), t + timedelta(minutes=30)
    steps, logs = [], {}

    def step(job, name, start, end, lines):
        n = len([s for s in steps if s[0] == job]) + 1
        steps.append((job, {"name": name, "status": "completed", "conclusion": "success", "number": n,
                            "started_at": z(start), "completed_at": z(end)}))
        logs[(job, n, name)] = "\n".join(f"{(lt or start).strftime('%Y-%m-%dT%H:%M:%S')}.0000000Z {x}" for lt, x in lines)

    step("build", "Build image", t - timedelta(minutes=1), t + timedelta(seconds=5),
         [(t, "#12 exporting to image"), (t, f"#12 writing image {img.cfg} done"), (t, f"#12 naming to {img.tag} done")])
    step("build", "Scan image", scan_t - timedelta(seconds=30), scan_t,
         [(None, "##[group]Run aquasecurity/trivy-action@0.28.0"), (None, "with:"), (None, f"  image-ref: {img.tag}"),
          (None, "  format: json"), (None, "  output: trivy-results.json"), (None, "##[endgroup]")])
    step("build", "Push image", push_t - timedelta(seconds=5), push_t,
         [(push_t, f"#15 exporting manifest {img.man} done"), (push_t, f"#15 exporting config {img.cfg} done"),
          (push_t, f"#15 pushing manifest for {img.tag}@{img.man} 0.4s done")])
    step("deploy-production", "Deploy to production", deploy_t - timedelta(seconds=10), deploy_t,
         [(deploy_t, f"::notice title=deploy::{img.lineage}@{img.man} env=production")])
    jobs = []
    for i, job in enumerate(("build", "deploy-production")):
        js = [s for j, s in steps if j == job]
        jobs.append({"id": run_id * 10 + i, "run_id": run_id, "name": job, "status": "completed", "conclusion": "success",
                     "started_at": js[0]["started_at"], "completed_at": js[-1]["completed_at"], "steps": js})
    (d / "run.json").write_bytes(orjson.dumps({"id": run_id, "name": "image-scan", "event": "push", "status": "completed",
                                               "conclusion": "success", "created_at": z(t - timedelta(minutes=2)),
                                               "updated_at": z(deploy_t)}))
    (d / "jobs.json").write_bytes(orjson.dumps({"total_count": len(jobs), "jobs": jobs}))
    for (job, n, name), text in logs.items():
        p = d / "logs" / job / f"{n}_{name}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def generate(out: Path, images: int, days: int, findings: int, seed: int = 1, end: datetime = datetime(2026, 11, 30)):
    rng = random.Random(seed)
    start = end - timedelta(days=days)
    out.mkdir(parents=True, exist_ok=True)
    inv = out / "inventory" / "deployable.yaml"
    inv.parent.mkdir(parents=True, exist_ok=True)
    imgs = [Image(rng, i, findings) for i in range(images)]
    inv.write_text("deployable:\n" + "".join(f"  - name: svc-{i.idx:04d}\n    lineage: {i.lineage}\n" for i in imgs))
    run_id = 10_000_000
    files = 0
    for day in range(days):
        t0 = start + timedelta(days=day)
        if t0.day == 1:
            snap = out / "exceptions" / "_global" / t0.date().isoformat() / ".trivyignore"
            snap.parent.mkdir(parents=True, exist_ok=True)
            picks = rng.sample([f for i in imgs for f in i.findings[:2]], k=min(5, images * 2))
            snap.write_text("".join(f"# accepted risk, ticket SEC-{rng.randrange(999)}\n{f['VulnerabilityID']} "
                                    f"exp:{(t0 + timedelta(days=45)).date().isoformat()}\n" for f in picks))
        for img in imgs:
            if (day + img.idx) % 7 == 0:       # a weekly release per image, on its own weekday
                img.new_build()
                run_id += 1
                ci_run(out, run_id, img, t0 + timedelta(hours=10, minutes=img.idx % 50))
                files += 6
            p = out / "trivy" / "registry" / t0.date().isoformat() / f"svc-{img.idx:04d}.json"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(img.report(t0 + timedelta(hours=2, minutes=img.idx % 50), registry=True))
            files += 1
    return {"images": images, "days": days, "findings_per_report": findings, "files": files}


def main(argv=None) -> int:
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("out", type=Path)
    a.add_argument("--images", type=int, default=100)
    a.add_argument("--days", type=int, default=365)
    a.add_argument("--findings", type=int, default=60)
    a.add_argument("--seed", type=int, default=1)
    args = a.parse_args(argv)
    print(orjson.dumps(generate(args.out, args.images, args.days, args.findings, args.seed)).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
