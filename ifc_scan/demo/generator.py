"""A realistic, deterministic demo landing zone (also the project's own test-data generator).

What it writes, for `weeks` weeks ending on `end` (a Monday, exclusive), in exactly the formats of
design/INPUTS.md:
- trivy/registry/<date>/<image>.json: nightly 02:00 registry scans of each deployable image's
  production image (a few nights missed), plus weekly scans of a third-party base image;
- ci/github-actions/<run_id>/: push-to-main runs with run.json, jobs.json, per-step logs (BuildKit
  build with load, trivy-action gate with `severity: CRITICAL,HIGH`, push, deploy to staging and
  production with kubectl and a deploy notice, cosign verify) and the Trivy artifact;
  one build has no scan step, gate failures block the push;
- exceptions/<scope>/<date>/: .trivyignore / .trivyignore.yaml snapshots with reasons, expiries
  (some expire inside the period) and an invalid line;
- approvals/<scope>/<date>/<sha>.json: the change record of each snapshot, as `ifc-scan collect
  exceptions` writes it (pull request, reviews); the CRITICAL exception lacks its CTO sign-off;
- inventory/deployable.yaml: the three deployable images and one retired lineage;
  inventory/approvers.yaml: who holds the policy's approval roles;
- tickets/github/<date>/: weekly snapshots of the GitHub issues opened for HIGH and CRITICAL findings in
  production (some late, some missing, some closed before the fix).
Vulnerabilities appear (introduced by builds, disclosed in deployed images) and get fixed by later
builds, CRITICAL ones fastest. Every record is possible: a ticket closes after it opens, an image is
scanned, pushed and deployed after its build step, a production image is scanned after its deploy
(ifc_scan_tests/test_demo.py reads the files back and checks).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from ifc_scan.demo.intel import write_intel

REGISTRY = "ghcr.io/intelliflow"
APPS = ("intelliflow-api", "intelliflow-web", "intelliflow-ai-worker")
RETIRED_APP = "intelliflow-legacy-worker"
BASE_IMAGE = "docker.io/library/node"
PACKAGES = [("openssl", "os-pkgs", "debian"), ("zlib1g", "os-pkgs", "debian"), ("libexpat1", "os-pkgs", "debian"),
            ("curl", "os-pkgs", "debian"), ("glibc", "os-pkgs", "debian"), ("libxml2", "os-pkgs", "debian"),
            ("express", "lang-pkgs", "node-pkg"), ("lodash", "lang-pkgs", "node-pkg"), ("axios", "lang-pkgs", "node-pkg"),
            ("next", "lang-pkgs", "node-pkg"), ("urllib3", "lang-pkgs", "python-pkg"), ("requests", "lang-pkgs", "python-pkg"),
            ("torch", "lang-pkgs", "python-pkg"), ("pillow", "lang-pkgs", "python-pkg")]
SEV_WEIGHTS = [("CRITICAL", 0.06), ("HIGH", 0.24), ("MEDIUM", 0.4), ("LOW", 0.26), ("UNKNOWN", 0.04)]
FIX_PROB = {"CRITICAL": 0.95, "HIGH": 0.6, "MEDIUM": 0.25, "LOW": 0.1, "UNKNOWN": 0.1}


def sha(*parts) -> str:
    return "sha256:" + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def z(dt: datetime, frac: int = 0) -> str:
    s = dt.strftime("%Y-%m-%dT%H:%M:%S")
    return s + (f".{dt.microsecond:06d}{frac:03d}Z" if frac else "Z")


def log_ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0Z"


@dataclass
class Vuln:
    vid: str
    pkg: str
    cls: str
    ptype: str
    severity: str
    installed: str
    fixed: str | None
    disclosed: datetime


@dataclass
class Image:
    app: str
    seq: int
    config: str
    manifest: str
    built: datetime
    vulns: set = field(default_factory=set)   # vuln ids latent in this image's packages


class JobLog:
    """One CI job: its steps and each step's log lines, on a clock that moves on step by step."""

    def __init__(self, rng: random.Random, start: datetime):
        self.rng, self.started, self.clock = rng, start, start
        self.steps: list[dict] = []
        self.logs: dict[tuple, list[str]] = {}

    def step(self, name: str, secs: int, lines: list[str], conclusion: str = "success") -> dict:
        start = self.clock
        end = start + timedelta(seconds=secs)
        n = len(self.steps) + 1
        self.steps.append({"name": name, "status": "completed", "conclusion": conclusion, "number": n,
                           "started_at": start.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                           "completed_at": end.strftime("%Y-%m-%dT%H:%M:%S.000Z")})
        out = []
        for i, text in enumerate(lines):
            lt = start + timedelta(seconds=secs * (i + 1) / (len(lines) + 1), microseconds=self.rng.randint(0, 999999))
            out.extend([text] if text.startswith("  ") and i and "|" in lines[i - 1] else [f"{log_ts(lt)} {text}"])
        self.logs[(n, name)] = out
        self.clock = end + timedelta(seconds=1)
        return self.steps[-1]


class Demo:
    def __init__(self, out: Path, weeks: int, seed: int, end: date, apps=APPS, builds_per_week: float = 1.6):
        self.out, self.weeks, self.rng, self.seed = Path(out), weeks, random.Random(seed), seed
        self.end = datetime(end.year, end.month, end.day)
        self.start = self.end - timedelta(weeks=weeks)
        self.apps = apps
        self.builds_per_week = builds_per_week
        self.vulns: dict[str, Vuln] = {}
        self.cve_counter = 10000
        self.run_id = 7_000_000_000 + seed * 1000
        self.job_id = 30_000_000_000 + seed * 10000
        self.exceptions: list[dict] = []   # generator's own model of what is in force, for suppression
        self._initial_images: dict[str, Image] = {}
        self._deploy_times: dict[str, list] = {}     # app -> [(production deploy time, image)]

    # --- vulnerability universe ------------------------------------------------------------
    def new_vuln(self, disclosed: datetime, pkg=None) -> Vuln:
        self.cve_counter += 1
        pkg, cls, ptype = pkg or self.rng.choice(PACKAGES)
        r, acc = self.rng.random(), 0.0
        sev = "LOW"
        for s, w in SEV_WEIGHTS:
            acc += w
            if r <= acc:
                sev = s
                break
        year = disclosed.year
        v = Vuln(f"CVE-{year}-{self.cve_counter}", pkg, cls, ptype, sev, f"1.{self.rng.randint(0, 9)}.{self.rng.randint(0, 20)}",
                 None if self.rng.random() < 0.15 else f"1.{self.rng.randint(10, 19)}.0", disclosed)
        self.vulns[v.vid] = v
        return v

    # --- exceptions (snapshots written as files, and kept as a model for suppression) --------
    def in_force(self, scope: str, t: datetime) -> set[str]:
        ids = set()
        for snap in self.exceptions:
            if snap["scope"] in (scope, "_global") and snap["from"] <= t < snap["until"]:
                for e in snap["entries"]:
                    if e.get("valid", True) and (e.get("exp") is None or e["exp"] > t):
                        ids.add(e["id"])
        return ids

    # --- writers -------------------------------------------------------------------------------
    def write_json(self, rel: str, doc) -> None:
        p = self.out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(doc, indent=1))

    def report(self, app_ref: str, img: Image, t: datetime, *, severities=None, registry: bool,
               scope: str, created=True, show_suppressed=False) -> dict:
        shown, suppressed = [], []
        excepted = self.in_force(scope, t)
        for vid in sorted(img.vulns):
            v = self.vulns[vid]
            if v.disclosed > t or (severities and v.severity not in severities):
                continue
            entry = {"VulnerabilityID": v.vid, "PkgID": f"{v.pkg}@{v.installed}", "PkgName": v.pkg,
                     "PkgIdentifier": {"PURL": f"pkg:{'deb/debian' if v.cls == 'os-pkgs' else 'generic'}/{v.pkg}@{v.installed}"},
                     "InstalledVersion": v.installed, "Status": "fixed" if v.fixed else "affected",
                     "SeveritySource": "nvd", "PrimaryURL": f"https://avd.aquasec.com/nvd/{v.vid.lower()}",
                     "Title": f"{v.pkg}: demo vulnerability {v.vid}", "Severity": v.severity,
                     "PublishedDate": z(v.disclosed)}
            if v.fixed:
                entry["FixedVersion"] = v.fixed
            if v.vid in excepted:
                if show_suppressed:
                    suppressed.append({"Type": "vulnerability", "Status": "ignored", "Statement": "in .trivyignore",
                                       "Source": ".trivyignore", "Finding": entry})
                continue
            shown.append((v, entry))
        results = []
        os_v = [e for v, e in shown if v.cls == "os-pkgs"]
        lang = [(v, e) for v, e in shown if v.cls != "os-pkgs"]
        r0 = {"Target": f"{app_ref} (debian 12.5)", "Class": "os-pkgs", "Type": "debian"}
        if os_v:
            r0["Vulnerabilities"] = os_v
        if suppressed:
            r0["ExperimentalModifiedFindings"] = suppressed
        results.append(r0)
        if lang:
            results.append({"Target": "Node.js" if "web" in app_ref or "api" in app_ref else "Python",
                             "Class": "lang-pkgs", "Type": lang[0][0].ptype, "Vulnerabilities": [e for _, e in lang]})
        if img.seq % 7 == 0:  # some images carry a Dockerfile misconfiguration and a secret
            results.append({"Target": "Dockerfile", "Class": "config", "Type": "dockerfile",
                            "Misconfigurations": [{"Type": "Dockerfile Security Check", "ID": "DS002", "AVDID": "AVD-DS-0002",
                                                   "Title": "Image user should not be 'root'", "Severity": "HIGH", "Status": "FAIL",
                                                   "Message": "Specify at least 1 USER command in Dockerfile"}]})
        lineage = app_ref.split(":")[0]
        doc = {"SchemaVersion": 2, "ArtifactName": app_ref, "ArtifactType": "container_image",
               "Metadata": {"OS": {"Family": "debian", "Name": "12.5"}, "ImageID": img.config, "DiffIDs": [sha(img.config, "l1")],
                            "RepoTags": [app_ref], "RepoDigests": [f"{lineage}@{img.manifest}"] if registry else [],
                            "ImageConfig": {"architecture": "amd64", "created": z(img.built), "os": "linux"}},
               "Results": results}
        if created:
            doc = {"SchemaVersion": 2, "Trivy": {"Version": "0.69.1"}, "CreatedAt": z(t, frac=self.rng.randint(1, 999)), **doc}
        return doc

    def run(self) -> dict:
        rng = self.rng
        stats = {"registry_scans": 0, "ci_runs": 0, "builds": 0, "deploys": 0}
        self.write_exceptions()
        apps = list(self.apps)
        current: dict[str, Image] = {}
        prod: dict[str, Image] = {}
        # onboarding images: built a few weeks before the period, already in production
        for app in apps + [RETIRED_APP]:
            img = Image(app, 0, sha(app, 0, "cfg"), sha(app, 0, "man"), self.start - timedelta(days=rng.randint(20, 120)))
            for _ in range(rng.randint(4, 9)):
                img.vulns.add(self.new_vuln(self.start - timedelta(days=rng.randint(30, 400))).vid)
            current[app] = prod[app] = self._initial_images[app] = img
        # the first deployable image carries the vulns the exceptions are about
        for vid in ("CVE-2025-0001", "CVE-2025-0002", "CVE-2025-0003"):
            prod[apps[0]].vulns.add(vid)
        self.retire_at = self.retire_time()
        missing_scan_done = False
        for t, app in self.build_events(apps):
            prev = current[app]
            seq = prev.seq + 1
            img = Image(app, seq, sha(app, seq, "cfg"), sha(app, seq, "man"), t)   # built: when its build step ends
            for vid in sorted(prev.vulns):   # sorted: set order varies with the hash seed
                if not self.fixed_by_build(self.vulns[vid], t):
                    img.vulns.add(vid)
            img.vulns.update(v.vid for v in self.introduced_by_build(app, t))
            current[app] = img
            skip_scan = self.skips_scan(t, missing_scan_done)
            missing_scan_done = missing_scan_done or skip_scan
            deployed = self.write_ci_run(app, img, t, skip_scan)
            stats["ci_runs"] += 1
            stats["builds"] += 1
            if deployed:
                prod[app] = img
                stats["deploys"] += 1
        stats["registry_scans"] += self.write_nightly_scans(apps + [RETIRED_APP])
        stats["registry_scans"] += self.write_base_image_scans()
        self.write_inventory()
        stats["tickets"] = self.write_tickets(apps)
        stats["intel_files"] = write_intel(self)
        return stats

    # --- the demo's choices, one method each (ifc_scan/demo/story.py makes other ones) -------------
    def retire_time(self) -> datetime:
        return self.start + timedelta(weeks=max(1, self.weeks // 3), hours=9)

    def build_events(self, apps) -> list[tuple[datetime, str]]:
        """Builds: Poisson-ish per app per week, on weekdays during working hours."""
        rng, events = self.rng, []
        for app in apps:
            for w in range(self.weeks):
                for _ in range(int(self.builds_per_week) + (rng.random() < self.builds_per_week % 1)):
                    t = self.start + timedelta(weeks=w, days=rng.randint(0, 4), hours=rng.randint(8, 17), minutes=rng.randint(0, 59))
                    events.append((t, app))
        return sorted(events)

    def fixed_by_build(self, v: Vuln, t: datetime) -> bool:
        """A public vulnerability is fixed by a build (a dependency bumped) at its severity's rate."""
        return v.disclosed <= t and self.rng.random() < FIX_PROB[v.severity]

    def introduced_by_build(self, app: str, t: datetime) -> list[Vuln]:
        if self.rng.random() < 0.35:
            return [self.new_vuln(t - timedelta(days=self.rng.randint(1, 300)))]   # introduced, already public
        return []

    def skips_scan(self, t: datetime, one_skipped: bool) -> bool:
        """One build after mid-period has no scan step."""
        return not one_skipped and t > self.start + timedelta(weeks=self.weeks // 2)

    def reaches_production(self, app: str, built: datetime) -> bool:
        return self.rng.random() >= 0.15            # not every build reaches production

    def night_missed(self, app: str, t: datetime) -> bool:
        return self.rng.random() < 0.03            # the nightly job failed that night: a cadence gap

    def write_nightly_scans(self, apps: list[str]) -> int:
        """Nightly 02:00 registry scans of each app's production image (replaying its deploy history), a few
        nights missed; the retired lineage's end at its retirement. Returns the files written."""
        rng, written = self.rng, 0
        for app in apps:
            history = [(self.start - timedelta(days=1), self._initial_images[app])] + self._deploy_times.get(app, [])
            day = self.start
            while day < self.end:
                t = day + timedelta(hours=2, minutes=rng.randint(0, 9), seconds=rng.randint(0, 59))
                day += timedelta(days=1)
                if app == RETIRED_APP and t >= self.retire_at:
                    break
                if self.night_missed(app, t):
                    continue
                img = [i for dt, i in history if dt <= t][-1]
                ref = f"{REGISTRY}/{app}:{img.seq}"
                doc = self.report(ref, img, t, registry=True, scope=app,
                                  show_suppressed=t > self.start + timedelta(weeks=self.weeks // 2))
                self.write_json(f"trivy/registry/{t.date().isoformat()}/{app}.json", doc)
                written += 1
        return written

    def write_base_image_scans(self) -> int:
        """The third-party base image, scanned weekly (policy: "Third-party base images: weekly"), rebuilt
        every 13 weeks keeping only its LOW and UNKNOWN findings. Returns the files written."""
        rng, written = self.rng, 0
        base = Image("node", 0, sha("node", "cfg"), sha("node", "man"), self.start - timedelta(days=200))
        for _ in range(5):
            base.vulns.add(self.new_vuln(self.start - timedelta(days=rng.randint(1, 300)),
                                         pkg=rng.choice(PACKAGES[:6])).vid)
        for w in range(self.weeks):
            t = self.start + timedelta(weeks=w, days=6, hours=3)
            if w % 13 == 12:
                base = Image("node", w, sha("node", w, "cfg"), sha("node", w, "man"), t - timedelta(days=2),
                             {v for v in base.vulns if self.vulns[v].severity in ("LOW", "UNKNOWN")})
            if rng.random() < 0.3:
                base.vulns.add(self.new_vuln(t - timedelta(days=2), pkg=rng.choice(PACKAGES[:6])).vid)
            self.write_json(f"trivy/base-images/{t.date().isoformat()}/node-20.json",
                            self.report(f"{BASE_IMAGE}:20", base, t, registry=True, scope="_base"))
            written += 1
        return written

    def write_tickets(self, apps) -> int:
        """GitHub issues for the HIGH and CRITICAL vulnerabilities that reached production, as the weekly
        collector would have taken them (Monday 05:00 snapshots): most opened in time, some late, some
        never; most closed after the fix, some before it. Their own random stream, so the rest of the demo
        is the same with or without them."""
        rng = random.Random(f"tickets-{self.seed}")
        issues = []
        for app in apps:
            history = [(self.start - timedelta(days=1), self._initial_images[app])] + self._deploy_times.get(app, [])
            spans: dict[str, list] = {}            # vid -> [first time in production, time it left or None]
            for i, (t, img) in enumerate(history):
                nxt = history[i + 1][0] if i + 1 < len(history) else None
                for vid in img.vulns:
                    v = self.vulns[vid]
                    if v.severity not in ("CRITICAL", "HIGH") or (nxt is not None and v.disclosed >= nxt):
                        continue
                    span = spans.setdefault(vid, [max(t, v.disclosed, self.start), None])
                    span[1] = nxt
            for vid, (seen, left) in sorted(spans.items()):
                v = self.vulns[vid]
                r = rng.random()
                if r < 0.12:
                    continue                          # never ticketed
                window = 24 if v.severity == "CRITICAL" else 168
                delay = window * (rng.uniform(1.2, 3.0) if r < 0.27 else rng.uniform(0.1, 0.8))
                created = seen + timedelta(hours=delay)
                closed = None
                if left is not None:     # closed after the fix shipped, and never before it was opened
                    closed = max(left, created) + timedelta(hours=rng.uniform(1, 48))
                elif rng.random() < 0.15:
                    closed = created + timedelta(days=rng.uniform(1, 10))   # closed without a fix
                issues.append({"n": len(issues) + 1, "vid": vid, "app": app, "sev": v.severity, "pkg": v.pkg,
                               "created": created, "closed": closed})
        written = 0
        for w in range(1, self.weeks + 1):
            at = self.start + timedelta(weeks=w, hours=5)
            if at > self.end:
                break
            doc = []
            for i in issues:
                if i["created"] >= at:
                    continue
                closed = i["closed"] if i["closed"] is not None and i["closed"] < at else None
                doc.append({"url": f"https://api.github.com/repos/intelliflow/platform/issues/{i['n']}",
                            "html_url": f"https://github.com/intelliflow/platform/issues/{i['n']}", "number": i["n"],
                            "title": f"{i['vid']}: {i['pkg']} in {i['app']}", "user": {"login": "sec-sam"},
                            "labels": [{"name": "security"}, {"name": i["sev"].lower()}],
                            "state": "closed" if closed else "open", "created_at": z(i["created"]),
                            "updated_at": z(closed or i["created"]), "closed_at": z(closed) if closed else None,
                            "body": f"Trivy reports {i['vid']} ({i['sev']}) in {i['pkg']} of {REGISTRY}/{i['app']}."})
            if doc:
                self.write_json(f"tickets/github/{at.date().isoformat()}/intelliflow__platform-050000.json", doc)
                written += 1
        return len(issues)

    def write_ci_run(self, app: str, img: Image, t: datetime, skip_scan: bool) -> bool:
        rng = self.rng
        self.run_id += rng.randint(3, 40)
        run_id = self.run_id
        tag = f"{REGISTRY}/{app}:{img.seq}"
        rel = f"ci/github-actions/{run_id}"
        job = JobLog(rng, t)
        job.step("Set up job", 2, ["Current runner version: '2.321.0'", "Operating System", "Ubuntu", "22.04.5", "LTS"])
        job.step("Run actions/checkout@v4", 3, ["##[group]Run actions/checkout@v4", "with:", "  repository: intelliflow/crm", "##[endgroup]"])
        build = job.step("Build image", 95, [
            "##[group]Run docker/build-push-action@v6", "with:", f"  tags: {tag}", "  load: true", "  push: false", "##[endgroup]",
            "#1 [internal] load build definition from Dockerfile", "#1 DONE 0.0s", "#12 exporting to image",
            "#12 exporting layers 2.1s done", f"#12 writing image {img.config} done", f"#12 naming to {tag} done",
            "#12 DONE 2.3s"])
        # the image exists once the build step has written it: scans, pushes and deploys all follow
        img.built = datetime.strptime(build["completed_at"], "%Y-%m-%dT%H:%M:%S.000Z")
        scan_report = self.report(tag, img, job.clock + timedelta(seconds=30), severities=("CRITICAL", "HIGH"), registry=False,
                                  scope=app, created=rng.random() > 0.1)
        has_critical = any(v.get("Severity") == "CRITICAL" for r in scan_report["Results"] for v in r.get("Vulnerabilities", []))
        gate_failed = has_critical
        if not skip_scan:
            job.step("Scan image with Trivy", 40, [
                "##[group]Run aquasecurity/trivy-action@0.28.0", "with:", f"  image-ref: {tag}", "  format: json",
                f"  output: trivy-results-{app}.json", "  severity: CRITICAL,HIGH", "  exit-code: 1",
                "  ignore-unfixed: false", "  trivyignores: .trivyignore", "env:", "  TRIVY_DB_REPOSITORY: mirror.gcr.io/aquasec/trivy-db:2",
                "##[endgroup]", "Run aquasecurity/setup-trivy@v0.2.1", f"Running Trivy with options: trivy image {tag}",
                "2026-01-01T00:00:00Z\tINFO\t[vuln] Vulnerability scanning is enabled"],
                conclusion="failure" if gate_failed else "success")
            self.write_json(f"{rel}/artifacts/trivy-results-{app}.json", scan_report)
            job.step("Upload scan results", 3, ["##[group]Run actions/upload-artifact@v4", "with:", f"  name: trivy-results-{app}", "##[endgroup]"],
                     conclusion="success")
        else:
            gate_failed = False  # no gate ran: the build sails through unscanned (the coverage KPI catches it)
        pushed = not gate_failed
        if pushed:
            job.step("Push image", 20, [
                "##[group]Run docker/build-push-action@v6", "with:", f"  tags: {tag}", "  push: true", "##[endgroup]",
                "#15 exporting to image", f"#15 exporting manifest {img.manifest} done", f"#15 exporting config {img.config} done",
                "#15 pushing layers 1.2s done", f"#15 pushing manifest for {tag}@{img.manifest} 0.4s done", "#15 DONE 1.8s"])
        self.job_id += 1
        jobs = [{"id": self.job_id, "run_id": run_id, "run_attempt": 1, "name": f"build-and-scan ({app})", "status": "completed",
                 "conclusion": "failure" if gate_failed else "success", "started_at": z(t), "completed_at": z(job.clock),
                 "steps": job.steps}]
        job_logs = {jobs[0]["name"]: job.logs}
        ended, deployed = job.clock, False
        if pushed:
            ended, deployed = self.deploy_jobs(app, img, run_id, job.clock, jobs, job_logs)
        run = {"id": run_id, "name": "image-scan", "path": ".github/workflows/image-scan.yml", "event": "push",
               "head_branch": "main", "head_sha": hashlib.sha1(f"{app}{img.seq}".encode()).hexdigest(),
               "run_number": run_id % 10000, "status": "completed",
               "conclusion": "failure" if gate_failed else "success", "run_attempt": 1, "created_at": z(t),
               "run_started_at": z(t), "updated_at": z(ended),
               "html_url": f"https://github.com/intelliflow/crm/actions/runs/{run_id}"}
        self.write_json(f"{rel}/run.json", run)
        self.write_json(f"{rel}/jobs.json", {"total_count": len(jobs), "jobs": jobs})
        for job_name, jl in job_logs.items():
            for (n, name), lines in jl.items():
                safe = name.replace("/", "").replace(":", "")  # GitHub strips these from log file names
                p = self.out / rel / "logs" / job_name / f"{n}_{safe}.txt"
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text("\n".join(lines))
        return deployed

    def deploy_jobs(self, app: str, img: Image, run_id: int, built_end: datetime, jobs: list, job_logs: dict) -> tuple:
        """Staging, then (most of the time) production, each its own job after the build job ended; appended
        to `jobs` and `job_logs`. Returns (the last job's end, whether production was deployed)."""
        rng, lineage = self.rng, f"{REGISTRY}/{app}"
        ended, deployed = built_end, False
        for env, delay in (("staging", rng.randint(10, 40)), ("production", rng.randint(60, 60 * 30))):
            if env == "production" and not self.reaches_production(app, built_end):
                break
            job = JobLog(rng, built_end + timedelta(minutes=delay))
            job.step("Set up job", 2, ["Current runner version: '2.321.0'"])
            if env == "production":
                job.step("Verify image signature", 6, [f"##[group]Run cosign verify {lineage}@{img.manifest}",
                                                       f"cosign verify --key cosign.pub {lineage}@{img.manifest}", "##[endgroup]",
                                                       "Verification for image -- The following checks were performed"])
            deploy = job.step(f"Deploy to {env}", 30, [
                f"##[group]Run kubectl set image deployment/{app} {app}={lineage}@{img.manifest}",
                f"kubectl -n {env} set image deployment/{app} {app}={lineage}@{img.manifest}",
                f"deployment.apps/{app} image updated", "##[endgroup]",
                f"::notice title=deploy::{lineage}@{img.manifest} env={env}"])
            self.job_id += 1
            jobs.append({"id": self.job_id, "run_id": run_id, "run_attempt": 1, "name": f"deploy-{env}", "status": "completed",
                         "conclusion": "success", "started_at": z(job.started), "completed_at": z(job.clock), "steps": job.steps})
            job_logs[jobs[-1]["name"]] = job.logs
            ended = job.clock
            if env == "production":
                deployed = True
                deploy_line_t = datetime.strptime(deploy["started_at"], "%Y-%m-%dT%H:%M:%S.000Z")
                self._deploy_times.setdefault(app, []).append((deploy_line_t, img))
        return ended, deployed

    def exception_snapshots(self) -> list[tuple]:
        """(scope, day, file name, lines, the entries as the generator's model) of each snapshot: an invalid
        line, an entry that expires inside the period and stays listed, a CRITICAL exception for 120 days."""
        s = self.start
        d1, d2, d3 = s.date(), (s + timedelta(weeks=self.weeks // 4)).date(), (s + timedelta(weeks=self.weeks // 2)).date()
        e1 = (s + timedelta(weeks=self.weeks // 3)).date()
        return [
            ("_global", d1, ".trivyignore", [
                "# .trivyignore - Trivy vulnerability exceptions",
                "# Format: CVE-ID  # Reason, Expiry: YYYY-MM-DD", "",
                "# No patch available upstream, tracking issue #123",
                f"CVE-2025-0001 exp:{e1.isoformat()}",
                "CVE-2025-0002  # False positive - function not called",
                "CVE-2019-99999 exp:2026-13-01",
            ], [{"id": "CVE-2025-0001", "exp": datetime.combine(e1, datetime.min.time())}, {"id": "CVE-2025-0002"},
                {"id": "CVE-2019-99999", "valid": False}]),
            ("intelliflow-api", d2, ".trivyignore.yaml", [
                "vulnerabilities:",
                "  - id: CVE-2025-0003",
                "    statement: Not reachable - curl binary removed at runtime; CTO sign-off SEC-42",
                f"    expired_at: {(d2 + timedelta(days=120)).isoformat()}",
            ], [{"id": "CVE-2025-0003", "exp": datetime.combine(d2 + timedelta(days=120), datetime.min.time())}]),
            ("_global", d3, ".trivyignore", [
                "# .trivyignore - Trivy vulnerability exceptions", "",
                f"CVE-2025-0001 exp:{e1.isoformat()}",
                "CVE-2025-0002  # False positive - function not called, Expiry: 2027-01-31",
            ], [{"id": "CVE-2025-0001", "exp": datetime.combine(e1, datetime.min.time())}, {"id": "CVE-2025-0002"}]),
        ]

    def write_exceptions(self) -> None:
        s = self.start
        for vid, pkg, sev in (("CVE-2025-0001", ("glibc", "os-pkgs", "debian"), "HIGH"),
                              ("CVE-2025-0002", ("libxml2", "os-pkgs", "debian"), "MEDIUM"),
                              ("CVE-2025-0003", ("curl", "os-pkgs", "debian"), "CRITICAL")):
            self.vulns[vid] = Vuln(vid, pkg[0], pkg[1], pkg[2], sev, "2.36-9", None, s - timedelta(days=60))
        snaps = self.exception_snapshots()
        for scope, d, name, lines, _entries in snaps:
            p = self.out / "exceptions" / scope / d.isoformat() / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("\n".join(lines) + "\n")
        self.write_approvals([(scope, d, name, "\n".join(lines) + "\n") for scope, d, name, lines, _e in snaps])
        by_scope: dict[str, list] = {}
        for scope, d, _name, _lines, entries in snaps:
            by_scope.setdefault(scope, []).append((datetime.combine(d, datetime.min.time()), entries))
        for scope, lst in by_scope.items():
            lst.sort(key=lambda x: x[0])
            for i, (frm, entries) in enumerate(lst):
                until = lst[i + 1][0] if i + 1 < len(lst) else datetime.max
                self.exceptions.append({"scope": scope, "from": frm, "until": until, "entries": entries})

    def write_approvals(self, snaps: list[tuple]) -> None:
        """Each snapshot as the change that made it: a pull request merged at 09:00 of its day, reviewed
        by the security engineer and the engineering lead. The CTO reviewed only the later change of a scope:
        the CRITICAL exception's 'CTO sign-off SEC-42' is only text, so its chain is incomplete; the first
        _global change's vulnerabilities were never shown by a scan (suppressed from the start), so their
        severity is unknown and the CTO was needed (D17)."""
        from ifc_scan.collect.exception_history import Change, FileSpec, HistorySummary, Review, write_history
        paths = {"_global": ".trivyignore", "intelliflow-api": "services/api/.trivyignore.yaml"}
        for scope in sorted({s_[0] for s_ in snaps}):
            changes = []
            for _scope, d, _name, text in sorted(x for x in snaps if x[0] == scope):
                number = 101 + 16 * len(changes) + (scope != "_global")
                merged = datetime.combine(d, datetime.min.time()) + timedelta(hours=9)
                changes.append(Change(
                    sha(scope, d.isoformat())[7:47], [], "dev-ana", "Ana Dev", "ana@intelliflow.example",
                    z(merged - timedelta(hours=3)), "web-flow", z(merged), f"Security exceptions update (#{number})",
                    z(merged), "pull_request",
                    {"number": number, "title": f"Security exceptions update for {scope}",
                     "url": f"https://github.com/intelliflow/platform/pull/{number}", "author": "dev-ana",
                     "merged_at": z(merged), "merge_commit_sha": None, "base": "main"},
                    [Review("sec-sam", "APPROVED", z(merged - timedelta(hours=2)), "github-review"),
                     Review("lead-lee", "APPROVED", z(merged - timedelta(hours=1)), "github-review")]
                    + ([Review("cto-chris", "APPROVED", z(merged - timedelta(minutes=30)), "github-review")]
                       if changes else []), text))
            write_history(self.out, FileSpec(paths[scope], scope), changes, {}, source="github",
                          repository="intelliflow/platform", branch="main", moved_to=self.out / ".unused",
                          summary=HistorySummary())
        p = self.out / "inventory" / "approvers.yaml"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("# who holds the policy's approval roles (docs/exception-governance.md)\napprovers:\n"
                     "  - {login: sec-sam, roles: [security-engineer]}\n"
                     "  - {login: lead-lee, roles: [engineering-lead]}\n"
                     "  - {login: cto-chris, roles: [cto]}\n")

    def write_inventory(self) -> None:
        lines = ["deployable:"]
        for app in self.apps:
            lines += [f"  - name: {app}", f"    lineage: {REGISTRY}/{app}"]
        lines += ["retired:", f"  - lineage: {REGISTRY}/{RETIRED_APP}", f"    at: {z(self.retire_at)}"]
        p = self.out / "inventory" / "deployable.yaml"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("\n".join(lines) + "\n")


DEFAULT_END = date(2026, 11, 30)


def generate(out: str | Path, weeks: int = 52, seed: int = 7, end: date = DEFAULT_END, apps=APPS,
             builds_per_week: float = 1.6, story: bool = False) -> dict:
    """Write the demo landing zone into `out` (created; must be empty or absent). Returns counts.
    `story`: the demo as a story week by week (ifc_scan/demo/story.py) instead of at random."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: the demo writes a fresh landing zone")
    if end.weekday() != 0:
        raise ValueError("end must be a Monday")
    if story:
        from ifc_scan.demo.story import StoryDemo
        demo = StoryDemo(out, weeks, seed, end, apps, builds_per_week)
    else:
        demo = Demo(out, weeks, seed, end, apps, builds_per_week)
    return demo.run()
