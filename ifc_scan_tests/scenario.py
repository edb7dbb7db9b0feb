"""Hand-built landing zones for KPI tests: a few scans, CI runs and exceptions, in the real formats."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import date, datetime, timedelta
from pathlib import Path

from ifc_scan.ingest.runner import ingest
from ifc_scan.kpis.stage import WeeklyStage, oracle_week
from ifc_scan.lifecycle.store import derive_lifecycle
from ifc_scan.policy import load_policy
from ifc_scan.warehouse.db import connect
from ifc_scan_tests.arrivals import replay_in_random_batches


def digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def z(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def vuln(vid, pkg, sev, fixed="9.9", cls="os-pkgs"):
    return {"VulnerabilityID": vid, "PkgName": pkg, "InstalledVersion": "1.0", "Severity": sev,
            "_cls": cls, **({"FixedVersion": fixed} if fixed else {})}


class Scenario:
    def __init__(self, root: Path, lineage="ghcr.io/acme/api", name="api"):
        self.root = Path(root)
        self.landing = self.root / "landing"
        self.landing.mkdir(parents=True, exist_ok=True)
        self.lineage, self.name = lineage, name
        self.n = 0
        self.run_id = 1000
        self.replayed = False
        inv = self.landing / "inventory" / "deployable.yaml"
        inv.parent.mkdir(parents=True, exist_ok=True)
        inv.write_text(f"deployable:\n  - name: {name}\n    lineage: {lineage}\n")

    def report(self, image: str, t: datetime | None, vulns, registry=True, suppressed=None,
               image_created: str = "2026-01-01T00:00:00Z") -> dict:
        os_v = [{k: v for k, v in x.items() if k != "_cls"} for x in vulns if x["_cls"] == "os-pkgs"]
        lib_v = [{k: v for k, v in x.items() if k != "_cls"} for x in vulns if x["_cls"] != "os-pkgs"]
        results = [{"Target": f"{self.lineage} (debian 12)", "Class": "os-pkgs", "Type": "debian",
                    **({"Vulnerabilities": os_v} if os_v else {})}]
        if suppressed is not None:
            results[0]["ExperimentalModifiedFindings"] = [
                {"Type": "vulnerability", "Status": "ignored", "Statement": "x", "Source": ".trivyignore",
                 "Finding": {k: v for k, v in s.items() if k != "_cls"}} for s in suppressed]
        if lib_v:
            results.append({"Target": "Node.js", "Class": "lang-pkgs", "Type": "node-pkg", "Vulnerabilities": lib_v})
        doc = {"SchemaVersion": 2, "ArtifactName": f"{self.lineage}:{image}", "ArtifactType": "container_image",
               "Metadata": {"ImageID": digest("cfg-" + image), "RepoTags": [f"{self.lineage}:{image}"],
                            "RepoDigests": [f"{self.lineage}@{digest('man-' + image)}"] if registry else [],
                            "ImageConfig": {"created": image_created}},
               "Results": results}
        if t is not None:
            doc["CreatedAt"] = z(t)
        return doc

    def registry_scan(self, image: str, t: datetime, vulns, suppressed=None, created_at=True, **kw) -> Path:
        """A registry scan at t; created_at=False writes no CreatedAt and sets the file's mtime to t."""
        self.n += 1
        p = self.landing / "trivy" / "registry" / f"{self.n:03d}-{image}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.report(image, t if created_at else None, vulns, True, suppressed, **kw)))
        if not created_at:
            epoch = (t - datetime(1970, 1, 1)).total_seconds()
            os.utime(p, (epoch, epoch))
        return p

    def ci_run(self, image: str, build_t: datetime, scan_t: datetime | None = None, vulns=(), severity: str | None = None,
               push_t: datetime | None = None, deploy_t: datetime | None = None, env="production",
               gate_failed: bool = False, with_extra: dict | None = None) -> int:
        """A run that builds `image` (BuildKit), optionally scans it (trivy-action), pushes and deploys it."""
        self.run_id += 1
        rid = self.run_id
        d = self.landing / "ci" / "github-actions" / str(rid)
        tag = f"{self.lineage}:{image}"
        cfg, man = digest("cfg-" + image), digest("man-" + image)
        steps, logs = [], {}

        def step(name, start, end, lines, conclusion="success"):
            n = len(steps) + 1
            steps.append({"name": name, "status": "completed", "conclusion": conclusion, "number": n,
                          "started_at": start.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                          "completed_at": end.strftime("%Y-%m-%dT%H:%M:%S.000Z")})
            logs[(n, name)] = [f"{(lt or start).strftime('%Y-%m-%dT%H:%M:%S')}.0000000Z {text}" for lt, text in lines]

        step("Build image", build_t - timedelta(minutes=1), build_t + timedelta(seconds=5),
             [(build_t, "#12 exporting to image"), (build_t, f"#12 writing image {cfg} done"),
              (build_t, f"#12 naming to {tag} done")])
        if scan_t is not None:
            w = [(None, "##[group]Run aquasecurity/trivy-action@0.28.0"), (None, "with:"), (None, f"  image-ref: {tag}"),
                 (None, "  format: json"), (None, "  output: trivy-results.json")]
            if severity:
                w.append((None, f"  severity: {severity}"))
            for key, value in (with_extra or {}).items():
                w.append((None, f"  {key}: {value}"))
            w.append((None, "##[endgroup]"))
            step("Scan image", scan_t - timedelta(seconds=30), scan_t, [(scan_t - timedelta(seconds=30), x) for _, x in w],
                 conclusion="failure" if gate_failed else "success")
            art = d / "artifacts" / "trivy-results.json"
            art.parent.mkdir(parents=True, exist_ok=True)
            rep = self.report(image, None, list(vulns), registry=False)
            art.write_text(json.dumps(rep))
        if push_t is not None:
            step("Push image", push_t - timedelta(seconds=5), push_t + timedelta(seconds=1),
                 [(push_t, f"#15 exporting manifest {man} done"), (push_t, f"#15 exporting config {cfg} done"),
                  (push_t, f"#15 pushing manifest for {tag}@{man} 0.4s done")])
        jobs = [{"id": rid * 10 + 1, "run_id": rid, "name": "build", "status": "completed", "conclusion": "success",
                 "started_at": z(build_t - timedelta(minutes=1)), "completed_at": z(build_t + timedelta(minutes=5)),
                 "steps": steps}]
        job_logs = {"build": logs}
        if deploy_t is not None:
            steps, logs = [], {}
            step(f"Deploy to {env}", deploy_t - timedelta(seconds=10), deploy_t + timedelta(seconds=10),
                 [(deploy_t, f"::notice title=deploy::{self.lineage}@{man} env={env}")])
            jobs.append({"id": rid * 10 + 2, "run_id": rid, "name": f"deploy-{env}", "status": "completed",
                         "conclusion": "success", "started_at": z(deploy_t - timedelta(seconds=10)),
                         "completed_at": z(deploy_t + timedelta(seconds=10)), "steps": steps})
            job_logs[f"deploy-{env}"] = logs
        d.mkdir(parents=True, exist_ok=True)
        (d / "run.json").write_text(json.dumps({"id": rid, "name": "image-scan", "event": "push", "status": "completed",
                                                "conclusion": "success", "created_at": z(build_t - timedelta(minutes=2)),
                                                "run_started_at": z(build_t - timedelta(minutes=2)),
                                                "updated_at": z(build_t + timedelta(minutes=5))}))
        (d / "jobs.json").write_text(json.dumps({"total_count": len(jobs), "jobs": jobs}))
        for job, jl in job_logs.items():
            for (n, name), lines in jl.items():
                p = d / "logs" / job / f"{n}_{name}.txt"
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text("\n".join(lines))
        return rid

    def deploy(self, image: str, t: datetime, env="production") -> int:
        """A cd run that only deploys the manifest of `image` (built and pushed elsewhere)."""
        self.run_id += 1
        rid = self.run_id
        d = self.landing / "ci" / "github-actions" / str(rid)
        log = d / "logs" / f"deploy-{env}" / f"1_Deploy to {env}.txt"
        log.parent.mkdir(parents=True)
        log.write_text(f"{t.strftime('%Y-%m-%dT%H:%M:%S')}.0000000Z "
                       f"::notice title=deploy::{self.lineage}@{digest('man-' + image)} env={env}")
        step = {"name": f"Deploy to {env}", "number": 1, "status": "completed", "conclusion": "success",
                "started_at": (t - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "completed_at": (t + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
        (d / "run.json").write_text(json.dumps({"id": rid, "name": "cd", "status": "completed", "conclusion": "success",
                                                "created_at": z(t - timedelta(minutes=1))}))
        (d / "jobs.json").write_text(json.dumps({"total_count": 1, "jobs": [
            {"id": rid * 10 + 2, "run_id": rid, "name": f"deploy-{env}", "status": "completed", "conclusion": "success",
             "started_at": z(t - timedelta(seconds=5)), "completed_at": z(t + timedelta(seconds=5)), "steps": [step]}]}))
        return rid

    def exceptions(self, scope: str, day: date, text: str, name=".trivyignore") -> None:
        p = self.landing / "exceptions" / scope / day.isoformat() / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    def retire(self, at: datetime) -> None:
        inv = self.landing / "inventory" / "deployable.yaml"
        inv.write_text(inv.read_text() + f"retired:\n  - lineage: {self.lineage}\n    at: {z(at)}\n")

    def kpis(self, monday: date, policy=None) -> dict:
        """The week's kpis.json as the weekly stage computes it (persisted lifecycle read at T); every
        scenario also checks it against the as-of-T oracle, so each hand-worked rule tests both."""
        wh = self.root / "w.duckdb"
        ingest(self.landing, wh, progress=lambda m: None)
        policy = policy or load_policy()
        with connect(wh) as con:
            derive_lifecycle(con, policy)
            self.result = WeeklyStage(con, policy).compute(monday)
            oracle = oracle_week(con, policy, monday)
        assert self.result.kpis_json == oracle.kpis_json, "persisted lifecycle disagrees with the as-of-T oracle"
        assert self.result.populations == oracle.populations
        if not self.replayed:   # the same landing zone arriving in pieces gives the same lifecycle and week
            self.replayed = True
            replay_in_random_batches(self.landing, self.root / f"arrivals-{monday}", policy, [monday])
        return self.result.kpis
