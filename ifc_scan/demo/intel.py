"""The demo's KEV catalogs and EPSS files (issue 31): small, in the publishers' shapes, on three dates, about
CVEs the demo's findings carry, so a new user sees the known-exploited section filled.

Chosen without the demo's random generator (its other files stay as they were for a seed):
- dates: the Wednesday of the third week (earlier if the first listed finding leaves production before
  that week ends: the Wednesday before the last week end it is still in production at, or the start's
  Wednesday), of the middle week and of the last week;
- KEV lists CVE-2021-44228 (real, in no demo image) and two demo findings with a fix released (never one
  the exception files are about): the CVE of the onboarding images that stays longest in production
  (added 8 days before the first date, due two weeks after it was added: past due while open), and the
  first CVE of another application's onboarding image (added three days before the middle date, due three
  weeks after); a catalog lists only the entries added by its date;
- EPSS scores every CVE disclosed by the file's date, from a hash of (CVE, date), skewed low as real scores
  are; the KEV-listed ones at 0.9 or more; percentiles as ranks within the file.
"""

from __future__ import annotations

import bisect
import gzip
import hashlib
import json
from datetime import date, datetime, timedelta

from ifc_scan.intel.files import epss_landing_path, kev_landing_path

LOG4J = {"cveID": "CVE-2021-44228", "vendorProject": "Apache", "product": "Log4j2",
         "vulnerabilityName": "Apache Log4j2 Remote Code Execution Vulnerability", "dateAdded": "2021-12-10",
         "shortDescription": "Apache Log4j2 contains a vulnerability where JNDI features do not protect against "
                             "attacker-controlled JNDI-related endpoints, allowing for remote code execution.",
         "requiredAction": "For all affected software assets for which updates exist, the only acceptable "
                           "remediation actions are: 1) Apply updates; OR 2) remove affected assets from agency networks.",
         "dueDate": "2021-12-24", "knownRansomwareCampaignUse": "Known",
         "notes": "https://nvd.nist.gov/vuln/detail/CVE-2021-44228", "cwes": ["CWE-20", "CWE-400", "CWE-502"]}


def _unit(*parts) -> float:
    """A stable number in [0, 1) from the parts (no random state)."""
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16) / float(1 << 48)


def _entry(v, added: date, due: date, ransomware: str) -> dict:
    return {"cveID": v.vid, "vendorProject": "Debian" if v.cls == "os-pkgs" else "Open Source", "product": v.pkg,
            "vulnerabilityName": f"{v.pkg} demo vulnerability {v.vid}", "dateAdded": added.isoformat(),
            "shortDescription": f"A demo finding of {v.pkg} that the demo's KEV catalog lists as exploited.",
            "requiredAction": "Apply mitigations per vendor instructions or discontinue use of the product if "
                              "mitigations are unavailable.",
            "dueDate": due.isoformat(), "knownRansomwareCampaignUse": ransomware, "notes": "", "cwes": []}


def _production_exit(demo, app: str, vid: str) -> datetime:
    """When the first production deploy of an image without `vid` happened (the demo's end if none)."""
    for t, img in demo._deploy_times.get(app, []):
        if vid not in img.vulns:
            return t
    return demo.end


def _candidates(demo, app: str) -> list[str]:
    """The fixable CVEs of the app's onboarding image, never one the exception files are about."""
    excepted = {e["id"] for snap in demo.exceptions for e in snap["entries"]}
    return sorted(v for v in demo._initial_images[app].vulns if v not in excepted and demo.vulns[v].fixed)


def kev_dates(demo) -> tuple[date, date, date, str, str]:
    """The three file dates, and the app and CVE listed from the first: of the onboarding images' CVEs, the
    one that stays longest in production (the first app's on a tie), so that the first catalog finds it there."""
    start = demo.start.date()
    exit_, app, first = max(((_production_exit(demo, a, v), -i, v) for i, a in enumerate(demo.apps)
                             for v in _candidates(demo, a)), key=lambda x: (x[0], x[1], [-ord(c) for c in x[2]]))
    app = demo.apps[-app]
    # the last week end (a Monday) at which it is still in production: the first catalog is the Wednesday before
    last_monday = start + timedelta(weeks=(exit_.date() - start).days // 7)
    day1 = min(start + timedelta(weeks=2, days=2), last_monday - timedelta(days=5)) \
        if last_monday > start else start + timedelta(days=2)
    return day1, start + timedelta(weeks=demo.weeks // 2, days=2), demo.end.date() - timedelta(days=5), app, first


def kev_choices(demo) -> list[dict]:
    """The demo's KEV entries (with Log4j), each with its dateAdded and dueDate."""
    day1, middle, _last, app, first = kev_dates(demo)
    second = _candidates(demo, next(a for a in demo.apps if a != app))[0]
    added_first, added_second = day1 - timedelta(days=8), middle - timedelta(days=3)
    return [LOG4J, _entry(demo.vulns[first], added_first, added_first + timedelta(days=14), "Known"),
            _entry(demo.vulns[second], added_second, added_second + timedelta(days=21), "Unknown")]


def _epss_rows(demo, day: date, kev_ids: set[str]) -> list[tuple[str, float, float]]:
    until = datetime.combine(day, datetime.min.time())
    cves = sorted({v.vid for v in demo.vulns.values() if v.disclosed < until} | {LOG4J["cveID"]})
    scores = {c: round(0.9 + 0.09 * _unit(c, day) if c in kev_ids else _unit(c, day) ** 4 * 0.6, 5) for c in cves}
    ranked = sorted(scores.values())
    # percentile: the share of scores at or below this one (FIRST's ranks over all CVEs; here the file's)
    return [(c, s, round(bisect.bisect_right(ranked, s) / len(ranked), 5)) for c, s in scores.items()]


def write_intel(demo) -> int:
    """Writes the demo's KEV and EPSS files into its landing zone; returns how many."""
    days = kev_dates(demo)[:3]
    entries = kev_choices(demo)
    for day in days:
        listed = [e for e in entries if date.fromisoformat(e["dateAdded"]) <= day]
        doc = {"title": "CISA Catalog of Known Exploited Vulnerabilities", "catalogVersion": day.strftime("%Y.%m.%d"),
               "dateReleased": f"{day.isoformat()}T17:02:40.0462Z", "count": len(listed), "vulnerabilities": listed}
        kev = demo.out / kev_landing_path(day)
        kev.parent.mkdir(parents=True, exist_ok=True)
        kev.write_text(json.dumps(doc, indent=4))
        rows = _epss_rows(demo, day, {e["cveID"] for e in listed})
        text = (f"#model_version:v2025.03.14,score_date:{day.isoformat()}T00:00:00Z\ncve,epss,percentile\n"
                + "".join(f"{c},{s:.5f},{p:.5f}\n" for c, s, p in rows))
        epss = demo.out / epss_landing_path(day)
        epss.parent.mkdir(parents=True, exist_ok=True)
        epss.write_bytes(gzip.compress(text.encode(), mtime=0))      # mtime 0: the same bytes every time
    return 2 * len(days)
