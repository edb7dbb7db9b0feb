"""FIRST's daily EPSS scores as published, known from their date D: enrichment/epss/<D>/epss_scores-<D>.csv.gz as
the collector writes them, or any layout intel/files.py accepts (is_epss_path; D by path_date, else the first
line's score_date); intel/files.py reads them as a stream. Every file is recorded in epss_files; only the newest
readable file of each ISO week keeps its ~300,000 rows in epss_scores (the only file a week ending after it
can use, intel/asof.py). The unit is the ISO week: a new, changed or removed file re-decides its week, so a
late-arriving newer file of the week takes the rows over, and a rejected newest file leaves them with the
newest readable one. Files of the week already ingested are not read again unless one must keep the rows."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import repeat
from typing import NamedTuple

from ifc_scan.ingest.sources.base import Context, EvidenceSource, Plan, Rejection, Removal, Unit
from ifc_scan.intel.files import (EPSS_FOLDER, EpssRead, IntelRejected, epss_file_date, epss_precedence, is_epss_path,
                                  read_epss_landing)
from ifc_scan.timeutil import monday_of

ROW_BYTES = 400      # a kept row as the batch holds it (tuple, CVE text, two floats, its DataFrame cells), counted
                     # toward the batch's size so a week's rows are stored before the next week's are read


class EpssWeek(NamedTuple):
    monday: date
    readings: dict           # path -> EpssRead or Rejection, for the files read this time
    kept: str | None         # the path whose rows the week keeps


def _read_one(rel: str, abspath: str, keep_rows: bool):
    try:
        return read_epss_landing(rel, abspath, keep_rows)
    except IntelRejected as exc:
        return Rejection(f"EPSS file not read: {exc}")
    except OSError as exc:
        return Rejection(f"EPSS file not read: {type(exc).__name__}: {exc}")


def read_epss_week(monday: date, files: tuple) -> EpssWeek:
    """files: (path, absolute path, state, D) with state new | ingested | rejected (as the warehouse knows it).
    The newest first (epss_precedence: D, then the path that sorts last): the first readable one keeps its rows;
    new ones are all read (checked, rows not kept)."""
    readings, kept = {}, None
    for rel, abspath, state, _ in sorted(files, key=lambda f: epss_precedence(f[3], f[0]), reverse=True):
        if state == "rejected" or (state == "ingested" and kept is not None):
            continue
        reading = _read_one(rel, abspath, keep_rows=kept is None)
        readings[rel] = reading
        if kept is None and isinstance(reading, EpssRead):
            kept = rel
    return EpssWeek(monday, readings, kept)


def read_epss_units(many: list[tuple]) -> list:
    """`read` of the kind: a week's files (monday, files), or a path without a date (path, why)."""
    return [read_epss_week(*a) if isinstance(a[0], date) else Rejection(f"EPSS file not read: {a[1]}") for a in many]


def _week_deletes(monday: date) -> list[tuple[str, tuple]]:
    return [("DELETE FROM epss_scores WHERE score_date BETWEEN ? AND ?", (monday, monday + timedelta(days=6)))]


class EpssFiles(EvidenceSource):
    name = "EPSS files"
    unit_name = "EPSS weeks"
    folder = "enrichment/"
    kinds = ("epss",)
    replaces = "its ISO week's choice of the file whose rows are kept (the newest readable one)"
    tables = {"epss_files": ["score_date", "model_version", "rows_read", "rows_kept", "source_path", "source_sha256"],
              "epss_scores": ["score_date", "cve", "epss", "percentile"]}
    read = staticmethod(read_epss_units)

    @staticmethod
    def claims(rel: str) -> str | None:
        return "epss" if is_epss_path(rel) else None

    def plan(self, ctx: Context) -> Plan:
        stored = dict(ctx.con.execute("SELECT source_path, score_date FROM epss_files").fetchall())
        plan, weeks, touched, days = Plan(), {}, set(), {}
        for f in ctx.all_of(self.kinds):
            new = f.rel in ctx.new_paths
            try:        # D: an unchanged file's as stored; else the path's, or the first line's (read alone)
                day = stored[f.rel] if f.rel in stored and not new else epss_file_date(f.rel, f.abspath, ctx.now)
            except (IntelRejected, OSError) as exc:
                if new:
                    why = str(exc) if isinstance(exc, IntelRejected) else f"{type(exc).__name__}: {exc}"
                    plan.units.append(Unit(f.rel, [f], (f.rel, why)))
                continue
            weeks.setdefault(monday_of(day), []).append(f)
            days[f.rel] = day
            if new:
                touched.add(monday_of(day))
        self.gone: dict[date, list[str]] = {}
        left = set()                # weeks a changed file left for another (its date is its first line's)
        for rel, d in stored.items():
            if rel not in days:
                self.gone.setdefault(monday_of(d), []).append(rel)
            elif monday_of(days[rel]) != monday_of(d):
                left.add(monday_of(d))
        for monday in sorted((set(self.gone) | left) - set(weeks)):         # the week's every file left
            deletes = _week_deletes(monday) + [("DELETE FROM epss_files WHERE source_path = ?", (r,))
                                               for r in self.gone.get(monday, [])]
            plan.removals.append(Removal(f"{EPSS_FOLDER} week of {monday} (removed)", deletes,
                                         f"ingest: the EPSS files of the week of {monday} left the landing zone"))
        for monday in sorted((touched | set(self.gone) | left) & set(weeks)):
            files = tuple((f.rel, f.abspath, "new" if f.rel in ctx.new_paths else
                           "ingested" if f.rel in stored else "rejected", days[f.rel]) for f in weeks[monday])
            plan.units.append(Unit(f"{EPSS_FOLDER} week of {monday}", weeks[monday], (monday, files), key=monday))
        return plan

    def store(self, ctx: Context, unit: Unit, reading) -> int:
        if isinstance(reading, Rejection):          # a path without a date: its own unit
            ctx.record(unit.files[0], "rejected", reading.reason)
            return 0
        week: EpssWeek = reading
        batch = ctx.batch
        batch.deletes += _week_deletes(week.monday)
        batch.deletes += [("DELETE FROM epss_files WHERE source_path = ?", (r,))
                          for r in [*self.gone.get(week.monday, []), *week.readings]]
        batch.deletes.append(("UPDATE epss_files SET rows_kept = false WHERE score_date BETWEEN ? AND ?",
                              (week.monday, week.monday + timedelta(days=6))))
        kept_rows = 0
        for f in unit.files:
            r = week.readings.get(f.rel)
            if isinstance(r, Rejection):
                ctx.record_if_new(f, "rejected", r.reason)
            elif r is not None:
                keep = f.rel == week.kept
                batch.add("epss_files", (r.score_date, r.model_version, r.rows_read, keep, f.rel, f.sha256 or None))
                if keep:
                    batch.extend("epss_scores", list(zip(repeat(r.score_date), r.cves, r.epss, r.percentile)))
                    kept_rows = len(r.cves)
                ctx.record_if_new(f, "ingested")
        return kept_rows * ROW_BYTES
