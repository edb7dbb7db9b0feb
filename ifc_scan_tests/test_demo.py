"""The demo landing zone holds only possible records: read back from its files as a reader would (not from
the generator's model), no ticket is closed before it was opened, no image is scanned or deployed before
it was built, no production image is scanned before it reached production, no review follows the merge."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path

import pytest
import yaml

from ifc_scan.demo.generator import generate
from ifc_scan.timeutil import parse_ts


def _json(p: Path):
    return json.loads(p.read_text())


def _ticket_problems(land: Path) -> list[str]:
    out = []
    for f in sorted(land.glob("tickets/github/*/*.json")):
        taken = datetime.fromisoformat(f.parent.name)        # the snapshot's day: it cannot list later events
        for t in _json(f):
            created, closed, updated = (parse_ts(t.get(k)) for k in ("created_at", "closed_at", "updated_at"))
            if closed is not None and closed < created:
                out.append(f"{f.relative_to(land)} #{t['number']}: closed {closed} before it was opened {created}")
            if updated < created:
                out.append(f"{f.relative_to(land)} #{t['number']}: updated {updated} before it was opened {created}")
            if created.date() > taken.date() or (closed is not None and closed.date() > taken.date()):
                out.append(f"{f.relative_to(land)} #{t['number']}: an event after the snapshot's day {taken.date()}")
    return out


def _run_problems(run: Path, deployed: dict[str, datetime]) -> list[str]:
    """One CI run folder: its times in order; the image built before it is scanned, pushed or deployed."""
    out = []
    r, jobs = _json(run / "run.json"), _json(run / "jobs.json")["jobs"]
    created, ended = parse_ts(r["created_at"]), parse_ts(r["updated_at"])
    steps = {}
    for j in jobs:
        js, je = parse_ts(j["started_at"]), parse_ts(j["completed_at"])
        if not created <= js <= je <= ended:
            out.append(f"{run.name} job {j['name']}: {js}..{je} outside the run {created}..{ended}")
        for s in j["steps"]:
            ss, se = parse_ts(s["started_at"]), parse_ts(s["completed_at"])
            if not js <= ss <= se <= je:
                out.append(f"{run.name} {j['name']} step {s['name']}: {ss}..{se} outside its job {js}..{je}")
            steps[(j["name"], s["name"])] = (ss, se)
    built = next(se for (job, name), (ss, se) in steps.items() if name == "Build image")
    for (job, name), (ss, se) in steps.items():
        if name in ("Scan image with Trivy", "Push image") and ss < built:
            out.append(f"{run.name}: {name} starts {ss}, before the build ended {built}")
    for j in jobs:
        if j["name"].startswith("deploy-") and parse_ts(j["started_at"]) < built:
            out.append(f"{run.name}: {j['name']} starts {j['started_at']}, before the image was built {built}")
        if j["name"] == "deploy-production":
            log = "\n".join(p.read_text() for p in sorted((run / "logs" / j["name"]).glob("*.txt")))
            for digest in re.findall(r"::notice title=deploy::\S+@(sha256:[0-9a-f]{64}) env=production", log):
                deployed.setdefault(digest, parse_ts(j["started_at"]))
    for art in sorted(run.glob("artifacts/*.json")):
        doc = _json(art)
        image_created = parse_ts(doc["Metadata"]["ImageConfig"]["created"])
        if not created <= image_created <= built:
            out.append(f"{art.relative_to(run.parent)}: image created {image_created}, not during the build "
                       f"({created}..{built})")
        if doc.get("CreatedAt") and parse_ts(doc["CreatedAt"]) < image_created:
            out.append(f"{art.relative_to(run.parent)}: scanned {doc['CreatedAt']} before the image was built "
                       f"{image_created}")
    return out


def _registry_problems(land: Path, deployed: dict[str, datetime]) -> list[str]:
    out = []
    inventory = yaml.safe_load((land / "inventory" / "deployable.yaml").read_text())
    retired = {r["lineage"]: parse_ts(str(r["at"]).replace("+00:00", "Z").replace(" ", "T"))     # YAML reads a time
               for r in inventory.get("retired") or []}
    for f in sorted(land.glob("trivy/**/*.json")):
        doc = _json(f)
        at = parse_ts(doc["CreatedAt"])
        image_created = parse_ts(doc["Metadata"]["ImageConfig"]["created"])
        if at < image_created:
            out.append(f"{f.relative_to(land)}: scanned {at} before the image was built {image_created}")
        for res in doc["Results"]:
            for v in res.get("Vulnerabilities") or []:
                if parse_ts(v["PublishedDate"]) > at:
                    out.append(f"{f.relative_to(land)}: {v['VulnerabilityID']} published after the scan")
        for ref in doc["Metadata"]["RepoDigests"]:
            lineage, digest = ref.split("@")
            if lineage in retired and at >= retired[lineage]:
                out.append(f"{f.relative_to(land)}: {lineage} scanned at {at}, after it was retired {retired[lineage]}")
            if digest in deployed and at < deployed[digest]:
                out.append(f"{f.relative_to(land)}: the production image scanned {at}, before its deploy "
                           f"{deployed[digest]}")
    return out


def _approval_problems(land: Path) -> list[str]:
    out = []
    for f in sorted(land.glob("approvals/*/*/*.json")):
        c = _json(f)
        landed = parse_ts(c["landed_at"])
        if parse_ts(c["commit"]["authored_at"]) > landed:
            out.append(f"{f.relative_to(land)}: authored after it landed")
        out += [f"{f.relative_to(land)}: {r['reviewer']} approved {r['submitted_at']}, after the merge {landed}"
                for r in c["reviews"] if parse_ts(r["submitted_at"]) > landed]
    return out


def impossible_records(land: Path) -> list[str]:
    deployed: dict[str, datetime] = {}
    out = _ticket_problems(land)
    for run in sorted(land.glob("ci/github-actions/*")):
        out += _run_problems(run, deployed)
    return out + _registry_problems(land, deployed) + _approval_problems(land)


@pytest.mark.parametrize("weeks,seed,end,story", [(52, 7, date(2026, 11, 30), True),    # the demo `make run` writes
                                                  (52, 7, date(2026, 11, 30), False), (8, 3, date(2026, 3, 9), False),
                                                  (12, 11, date(2026, 6, 1), True)])
def test_the_demo_holds_no_impossible_record(tmp_path, weeks, seed, end, story):
    land = tmp_path / "landing"
    generate(land, weeks=weeks, seed=seed, end=end, story=story)
    assert len(list(land.glob("tickets/github/*/*.json"))) >= weeks - 1      # the checks had records to read
    assert len(list(land.glob("ci/github-actions/*/artifacts/*.json"))) > weeks
    assert impossible_records(land) == []


def test_the_story_demo_shows_each_verdict_week_by_week(tmp_path, capsys):
    """12 weeks ending Monday 2026-11-30: W37..W48. The story (ifc_scan/demo/story.py) fixes, by design:
    gaps = max(2, 12 // 8) = 2 weeks (W37, W38), the recovery week W39, the incident in week 12 - 4 = 8
    from 0 (W45), compliant weeks between and after."""
    from ifc_scan.cli import main
    land, wh, rep = tmp_path / "landing", tmp_path / "w.duckdb", tmp_path / "reports"
    assert main(["demo", "--out", str(land), "--weeks", "12", "--end", "2026-11-30", "--story"]) == 0
    assert main(["ingest", "--landing", str(land), "--warehouse", str(wh)]) == 0
    capsys.readouterr()
    assert main(["report", "--landing", str(land), "--warehouse", str(wh), "--reports", str(rep), "--signing-key", "",
                 "--all"]) == 0
    weeks = {w["week"]: w for w in map(json.loads, capsys.readouterr().out.splitlines())}
    assert sorted(weeks) == [f"2026-W{n}" for n in range(37, 49)]
    compliant = {w for w, r in weeks.items() if r["verdict"] == "COMPLIANT"}
    assert sorted(set(weeks) - compliant) == ["2026-W37", "2026-W38", "2026-W39", "2026-W45"]
    # the gaps: W38 holds the build without a scan step (5 of its 6 builds scanned, 83.33 %) and a missed
    # night of intelliflow-web (Wednesday 2026-09-16: 20 of 21 lineage-days, 3 images x 7 days: 95.24 %)
    assert weeks["2026-W38"]["build_gate_pct"] == 83.33 and weeks["2026-W38"]["nightly_pct"] == 95.24
    # the incident: a CRITICAL disclosed Monday 2026-11-02 12:00, found by the nightly scan of Tuesday 02:00-02:10,
    # fixed by the hotfix built Wednesday 16:00 and deployed 1 to 30 h later (the demo's deploy delay), so
    # detected to fixed is between 38.8 h (Wednesday 17:00) and 72 h (the Friday 02:00 scan): over the 24 h
    # target; the Monday 02:00 nightly scan of the same image failed: 20 of 21 lineage-days
    incident = weeks["2026-W45"]
    assert 38.8 <= incident["mttr_critical"] <= 72 and incident["nightly_pct"] == 95.24
    assert "NIST SP 800-53 RA-5, SI-2(3)" in incident["failing_controls"]
    # after it, and in the final week (evidence up to its last night), every control passes
    assert {"2026-W46", "2026-W47", "2026-W48"} <= compliant and weeks["2026-W48"]["failing_controls"] == []
    last_night = sorted(p.name for p in (land / "trivy" / "registry").iterdir())[-1]
    assert last_night == "2026-11-29"


def test_the_story_of_make_run_over_52_weeks(tmp_path, capsys):
    """make run's demo: 52 weeks from Monday 2025-12-01 (2025-W49). gaps = 52 // 8 = 6 weeks, 2025-W49..W52
    and 2026-W01, W02; recovery 2026-W03; the incident in week 52 - 4 = 48 from 0, 2025-12-01 + 48 weeks =
    2026-11-02, 2026-W45. Every other week is COMPLIANT."""
    from ifc_scan.cli import main
    land, wh, rep = tmp_path / "landing", tmp_path / "w.duckdb", tmp_path / "reports"
    assert main(["demo", "--out", str(land), "--story"]) == 0
    assert main(["ingest", "--landing", str(land), "--warehouse", str(wh)]) == 0
    capsys.readouterr()
    assert main(["report", "--landing", str(land), "--warehouse", str(wh), "--reports", str(rep), "--signing-key", "",
                 "--all"]) == 0
    weeks = {w["week"]: w["verdict"] for w in map(json.loads, capsys.readouterr().out.splitlines())}
    assert len(weeks) == 52
    assert sorted(w for w, v in weeks.items() if v != "COMPLIANT") == [
        "2025-W49", "2025-W50", "2025-W51", "2025-W52", "2026-W01", "2026-W02", "2026-W03", "2026-W45"]


def test_the_demo_ships_kev_and_epss_files_about_its_own_findings(tmp_path):
    """12 weeks ending 2026-11-30 (start Monday 2026-09-07), the story. ifc_scan/demo/intel.py lists from the
    first catalog the onboarding CVE that stays longest in production: in this demo one of intelliflow-ai-worker,
    whose registry scans show it up to 2026-09-23. The last week end it is in production at is Monday 09-21, so
    the first files are dated the Wednesday before, 09-16; the entry was added 8 days before (09-08) and is due
    14 days after that (09-22). The other dates: start + 6 weeks + 2 days (10-21) and end - 5 days (11-25)."""
    from ifc_scan.ingest.runner import ingest
    from ifc_scan.intel.asof import intel_as_of
    from ifc_scan.warehouse.db import connect
    land, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    generate(land, weeks=12, seed=7, end=date(2026, 11, 30), story=True)
    days = ["2026-09-16", "2026-10-21", "2026-11-25"]
    assert sorted(p.parent.name for p in land.glob("enrichment/kev/*/known_exploited_vulnerabilities.json")) == days
    assert sorted(p.parent.name for p in land.glob("enrichment/epss/*/epss_scores-*.csv.gz")) == days
    s = ingest(land, wh)
    assert not [r for r in s.rejections if r[0].startswith("enrichment/")]
    with connect(wh) as con:
        week = intel_as_of(con, datetime(2026, 9, 21))                 # the week ending Monday 09-21 uses 09-16
        demo_cves = sorted(c for c in week.kev if c != "CVE-2021-44228")
        assert week.kev_catalog.file_date == date(2026, 9, 16) and len(demo_cves) == 1
        listed = week.kev[demo_cves[0]]
        assert (listed.date_added, listed.due_date) == (date(2026, 9, 8), date(2026, 9, 22))
        # the finding is shown by registry scans of the production image during that week and up to 09-23
        last = con.execute(
            "SELECT max(s.created_at) FROM scan_vulnerabilities v JOIN scans s USING (scan_id) WHERE "
            "v.vulnerability_id = ? AND s.lineage = 'ghcr.io/intelliflow/intelliflow-ai-worker' "
            "AND s.source_path LIKE 'trivy/registry/%'", (demo_cves[0],)).fetchone()[0]
        assert last.date() == date(2026, 9, 23)
        # EPSS: every CVE disclosed by the file's date is scored; the KEV-listed ones at 0.9 or more
        epss = intel_as_of(con, datetime(2026, 9, 21), cves=demo_cves + ["CVE-2021-44228"]).epss
        assert sorted(epss) == sorted(demo_cves + ["CVE-2021-44228"]) and min(e.epss for e in epss.values()) >= 0.9
    # deterministic: the same seed writes the same bytes
    again = tmp_path / "again"
    generate(again, weeks=12, seed=7, end=date(2026, 11, 30), story=True)
    for p in land.glob("enrichment/*/*/*"):
        assert (again / p.relative_to(land)).read_bytes() == p.read_bytes()
