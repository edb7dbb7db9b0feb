"""The demo as a story a new user can follow week by week (`ifc-scan demo --story`, and `make run`).

Same images, formats and pipeline as the random demo (generator.py); only the choices differ:
- gaps at first (the first `gaps` weeks, an eighth of the period, at least 2): the onboarding images
  carry old findings, builds fix them only now and then, one build has no scan step, two nights
  are missed, the exception file holds an invalid line and an entry that expires and stays listed, the
  base image is not refreshed; every week is NOT COMPLIANT;
- recovery (week `gaps`): every build bumps every dependency with a fix, a clean exception file
  approved by the security engineer, the engineering lead and the CTO, a fresh base image: the old
  findings close late, so this week still misses its remediation-time targets;
- compliant weeks: builds on Tuesdays and Thursdays, each reaching production; new findings are LOW or
  MEDIUM with a fix and close at the next build;
- the incident (the fourth week from the end): a CRITICAL disclosed on Monday 12:00 in the production
  image of intelliflow-api, found by the next nightly scan, fixed by a hotfix build on Wednesday
  16:00, in production for about two days; that week's Monday 02:00 nightly scan of the same image failed
  (a day without any scan of it);
- recovery, and a final week with current evidence (scans up to its last night).
Reproducible for a seed like the random demo.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ifc_scan.demo.generator import BASE_IMAGE, FIX_PROB, Demo, Image, Vuln, sha


class StoryDemo(Demo):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.weeks < 8:
            raise ValueError("the demo's story needs at least 8 weeks (gaps, recovery, compliant weeks, an incident)")
        self.gaps = max(2, self.weeks // 8)
        self.incident_week = self.weeks - 4
        monday = self.start + timedelta(weeks=self.incident_week)
        self.disclosed = monday + timedelta(hours=12)                 # Monday 12:00
        self.hotfix = monday + timedelta(days=2, hours=16)            # Wednesday 16:00
        # the nightly scan of Monday 02:00 fails (a day with no build either: a gap in nightly coverage)
        self.missed_night = monday
        self.incident_app = self.apps[0]                              # intelliflow-api in the default demo

    def week(self, t: datetime) -> int:
        return (t - self.start).days // 7

    def retire_time(self) -> datetime:
        return self.start + timedelta(weeks=self.gaps, hours=-15)      # the Sunday 09:00 before the recovery

    def build_events(self, apps) -> list[tuple[datetime, str]]:
        events = []
        for w in range(self.weeks):
            monday = self.start + timedelta(weeks=w)
            for i, app in enumerate(apps):
                tuesday, thursday = monday + timedelta(days=1, hours=10, minutes=7 * i), monday + timedelta(days=3, hours=14, minutes=7 * i)
                if w == self.incident_week and app == self.incident_app:
                    events += [(self.hotfix, app), (thursday, app)]    # no Tuesday build: the fix waits for the hotfix
                else:
                    events += [(tuesday, app), (thursday, app)]
        return sorted(events)

    def fixed_by_build(self, v: Vuln, t: datetime) -> bool:
        if self.week(t) < self.gaps:
            return v.disclosed <= t and self.rng.random() < FIX_PROB[v.severity] / 3
        return v.disclosed <= t

    def introduced_by_build(self, app: str, t: datetime) -> list[Vuln]:
        if self.week(t) < self.gaps:
            return super().introduced_by_build(app, t)
        last_before_incident = self.start + timedelta(weeks=self.incident_week - 1, days=3, hours=14)
        if app == self.incident_app and last_before_incident <= t < self.disclosed:
            v = self.new_vuln(self.disclosed, pkg=("openssl", "os-pkgs", "debian"))
            v.severity, v.fixed = "CRITICAL", "3.0.16-1"
            return [v]
        if self.rng.random() < 0.25:
            v = self.new_vuln(t - timedelta(days=self.rng.randint(1, 300)))
            v.severity, v.fixed = self.rng.choice(("LOW", "MEDIUM")), v.fixed or "1.10.0"
            return [v]
        return []

    def skips_scan(self, t: datetime, one_skipped: bool) -> bool:
        return not one_skipped and self.week(t) == 1

    def reaches_production(self, app: str, built: datetime) -> bool:
        return self.week(built) >= self.gaps or self.rng.random() >= 0.3

    def night_missed(self, app: str, t: datetime) -> bool:
        if self.week(t) < self.gaps:
            return app == self.apps[1 % len(self.apps)] and (t - self.start).days in (2, 9)   # two Wednesdays: no build
        return app == self.incident_app and t.date() == self.missed_night.date()

    def write_base_image_scans(self) -> int:
        """Weekly scans of the third-party base image: its old findings until the recovery, then a fresh
        image every 8 weeks, LOW findings only in between (due in 90 days)."""
        written = 0
        base = Image("node", 0, sha("node", "cfg"), sha("node", "man"), self.start - timedelta(days=200))
        for _ in range(4):
            base.vulns.add(self.new_vuln(self.start - timedelta(days=self.rng.randint(1, 300))).vid)
        for w in range(self.weeks):
            t = self.start + timedelta(weeks=w, days=6, hours=3)
            if w >= self.gaps and (w - self.gaps) % 8 == 0:
                base = Image("node", w, sha("node", w, "cfg"), sha("node", w, "man"), t - timedelta(days=2))
            elif w >= self.gaps and self.rng.random() < 0.2:
                v = self.new_vuln(t - timedelta(days=2))
                v.severity, v.fixed = "LOW", v.fixed or "1.10.0"
                base.vulns.add(v.vid)
            self.write_json(f"trivy/base-images/{t.date().isoformat()}/node-20.json",
                            self.report(f"{BASE_IMAGE}:20", base, t, registry=True, scope="_base"))
            written += 1
        return written

    def exception_snapshots(self) -> list[tuple]:
        s = self.start
        expires = (s + timedelta(weeks=self.gaps - 1, days=2)).date()
        clean = (s + timedelta(weeks=self.gaps)).date()
        until = (self.end + timedelta(days=90)).date()
        return [
            ("_global", s.date(), ".trivyignore", [
                "# .trivyignore - Trivy vulnerability exceptions", "",
                f"CVE-2025-0001 exp:{expires.isoformat()}",
                "CVE-2025-0002  # False positive - function not called",
                "CVE-2019-99999 exp:2026-13-01",
            ], [{"id": "CVE-2025-0001", "exp": datetime.combine(expires, datetime.min.time())}, {"id": "CVE-2025-0002"},
                {"id": "CVE-2019-99999", "valid": False}]),
            ("_global", clean, ".trivyignore", [
                "# .trivyignore - Trivy vulnerability exceptions (reviewed by security, engineering and the CTO)", "",
                f"CVE-2025-0002 exp:{until.isoformat()}  # False positive - function not called",
            ], [{"id": "CVE-2025-0002", "exp": datetime.combine(until, datetime.min.time())}]),
        ]

