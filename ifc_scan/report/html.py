"""report.html and index.html: jinja2 (autoescape on) + plotly, one self-contained file.

Untrusted scan text only ever reaches the page through jinja2 escaping or inside a JSON data block
whose `<` are escaped; the page's Content-Security-Policy allows only its own inline scripts, by hash.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import datetime, timedelta
from functools import lru_cache
from importlib import resources

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from ifc_scan.kpis.exploitation import fix_first_key
from ifc_scan.kpis.stage import OPEN_STATES
from ifc_scan.kpis.targets import Targets, judge_targets
from ifc_scan.kpis.view import WeekKpis
from ifc_scan.timeutil import duration

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
SEV_COLORS = {"CRITICAL": "#b3261e", "HIGH": "#e8710a", "MEDIUM": "#f2b600", "LOW": "#3d7bd9", "UNKNOWN": "#8a8a8a"}
PAGE_ROWS = 200   # findings shown in the page; the CSV holds them all
FIX_FIRST_ROWS = 25   # the "fix first" table's rows; findings.csv holds every open finding

ENV = Environment(loader=PackageLoader("ifc_scan.report", "templates"), autoescape=select_autoescape(["html", "j2"]),
                  trim_blocks=True, lstrip_blocks=True)


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """plotly.js's "basic" partial bundle (bar, scatter, pie; MIT, see static/plotly-basic.LICENSE), the same
    plotly.js release as the plotly package bundles (4.1.1): 1.2 MB inlined instead of 4.6 MB, so each
    week's folder still opens offline and alone."""
    return resources.files("ifc_scan.report").joinpath("static/plotly-basic.min.js").read_text(encoding="utf-8")


@lru_cache(maxsize=4)
def _csp_hash(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode() + "'"


@lru_cache(maxsize=1)
def renderer_digest() -> str:
    """sha256 of what turns figures into report.html (this module, the templates, the static files):
    `verify` re-renders a week only with the renderer that wrote it."""
    h = hashlib.sha256(resources.files("ifc_scan.report").joinpath("html.py").read_bytes())
    for folder in ("templates", "static"):
        for entry in sorted(resources.files("ifc_scan.report").joinpath(folder).iterdir(), key=lambda e: e.name):
            if entry.is_file():
                h.update(entry.name.encode() + b"\0" + entry.read_bytes())
    return h.hexdigest()


def json_block(data) -> Markup:
    """JSON safe to embed in <script type="application/json">: no '<', '>' or '&' survive unescaped."""
    text = json.dumps(data, sort_keys=True).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def fmt(v, suffix=""):
    """Counts as integers, other figures with one decimal at most: '100 %', '87.5 %', '1,176 h'."""
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{int(v):,}{suffix}" if v == int(v) else f"{v:,.1f}{suffix}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}{suffix}"
    return f"{v}{suffix}"


def period(start: str, end: str) -> str:
    """'2026-11-23T00:00:00Z', '2026-11-30T00:00:00Z' (end exclusive) -> 'Mon 23 – Sun 29 Nov 2026 (UTC)'."""
    try:
        a = datetime.strptime(start[:10], "%Y-%m-%d")
        b = datetime.strptime(end[:10], "%Y-%m-%d") - timedelta(days=1)
    except (TypeError, ValueError):
        return f"{start} to {end}"
    left = a.strftime("%a ") + str(a.day) + ("" if a.month == b.month else a.strftime(" %b")) + \
        ("" if a.year == b.year else a.strftime(" %Y"))
    return f"{left} – {b.strftime('%a')} {b.day} {b.strftime('%b %Y')} (UTC)"


_SEPARATORS = re.compile(r"([/:@.\-_])")


def wrapid(value) -> Markup:
    """An identifier (lineage, digest, package path) that may wrap only after a separator, escaped."""
    if value is None:
        return Markup("")
    return Markup(_SEPARATORS.sub(lambda m: m.group(1) + "\x00", str(escape(value))).replace("\x00", "<wbr>"))


def when(v):
    """'2026-11-20T05:09:04.234148Z' -> '2026-11-20 05:09Z' for reading; CSV and JSON keep full precision."""
    if not v:
        return v
    return v[:10] + " " + v[11:16] + "Z" if len(v) >= 16 and v[10] == "T" else v


def anchor(kind: str, *parts) -> str:
    """The id of a table row an item of a requirement links to (the same call on both ends): kind and a short
    hash of what identifies the row, so untrusted text never reaches an id or a URL fragment."""
    return kind + "-" + hashlib.sha256("\x00".join("" if p is None else str(p) for p in parts).encode()).hexdigest()[:12]


def overdue_for(due_at: str | None, as_of: str) -> str:
    """How long an overdue finding is past due at T, in the report's one duration format ('22 h', '3 d 4 h')."""
    try:
        due = datetime.strptime(due_at[:19], "%Y-%m-%dT%H:%M:%S")
        t = datetime.strptime(as_of[:19], "%Y-%m-%dT%H:%M:%S")
    except (TypeError, ValueError):
        return "n/a"
    return duration((t - due).total_seconds() / 3600)


ENV.globals["anchor"] = anchor
ENV.filters["overdue_for"] = overdue_for
ENV.filters["fmt"] = fmt
ENV.filters["when"] = when
# "sam (security-engineer, 2026-02-03T10:00:00Z); ..." -> "sam (security-engineer); ...": the times are in
# exceptions.csv and kpis.json; the page keeps who and in which role
ENV.filters["approvers_short"] = lambda s: re.sub(r", \d{4}-\d\d-\d\dT[\d:]+Z\)", ")", s or "")
ENV.filters["duration"] = duration
ENV.filters["wrapid"] = wrapid


LAYOUT = {"margin": {"l": 44, "r": 24, "t": 56, "b": 40}, "height": 320, "paper_bgcolor": "white",
          "plot_bgcolor": "white", "font": {"color": "#2a3f5f"}, "legend": {"orientation": "h"},
          "xaxis": {"gridcolor": "#EBF0F8", "automargin": True, "tickangle": 0}, "yaxis": {"gridcolor": "#EBF0F8", "zeroline": False}}


def _layout(title: str, **extra) -> dict:
    """Plain plotly.js layout JSON: no plotly.py Figure (whose template copy and validation were most of the
    time spent writing a week)."""
    out = json.loads(json.dumps(LAYOUT))
    out["title"] = {"text": title}
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k].update(v)
        else:
            out[k] = v
    return out


def _hline(y: float, color: str, text: str) -> tuple[dict, dict]:
    return ({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": y, "y1": y,
             "line": {"color": color, "dash": "dot"}},
            {"xref": "paper", "x": 1, "xanchor": "right", "yref": "y", "y": y, "yanchor": "bottom", "text": text,
             "showarrow": False})


def _week_ticks(weeks: list[str]) -> dict:
    """x-axis labels 'W41' (whole labels clip or collide when printed), the year kept when the window spans two."""
    same_year = len({w[:4] for w in weeks}) <= 1
    return {"tickmode": "array", "tickvals": weeks, "ticktext": [w[5:] if same_year else w for w in weeks]}


def _figures(trend: list[dict], k: dict) -> list[dict]:
    weeks = [t["week"] for t in trend]       # ISO year and week: a window can span a new year
    figs = []
    f1 = [{"type": "bar", "name": s, "x": weeks, "y": [t["open"][s] for t in trend], "marker": {"color": SEV_COLORS[s]}}
          for s in SEVERITIES]
    figs.append(("open_trend", f1, _layout("Open findings by severity (at each week's end)", barmode="stack"),
                 ["week"] + list(SEVERITIES), [[t["week"]] + [t["open"][s] for s in SEVERITIES] for t in trend]))
    f2 = [{"type": "scatter", "mode": "lines+markers+text", "name": f"MTTR {s} (mean h)", "x": weeks,
           "y": [t["mttr"][s] for t in trend], "line": {"color": SEV_COLORS[s]}, "connectgaps": False,
           # each point says how many fixes it averages: one fix is not a trend
           "text": [f"n={t.get('mttr_n', {}).get(s)}" if t["mttr"][s] is not None else "" for t in trend],
           "textposition": "top center", "cliponaxis": False}
          for s in ("CRITICAL", "HIGH")]
    lines = [_hline(k["policy"]["sla_hours"]["CRITICAL"] or 24, SEV_COLORS["CRITICAL"], "CRITICAL SLA"),
             _hline(k["policy"]["sla_hours"]["HIGH"] or 168, SEV_COLORS["HIGH"], "HIGH SLA")]
    figs.append(("mttr_trend", f2, _layout("Mean time to remediate (hours; gaps = no fixes that week)",
                                           shapes=[a for a, _ in lines], annotations=[b for _, b in lines]),
                 ["week", "MTTR CRITICAL mean", "n", "MTTR HIGH mean", "n"],
                 [[t["week"], duration(t["mttr"]["CRITICAL"]), t.get("mttr_n", {}).get("CRITICAL"),
                   duration(t["mttr"]["HIGH"]), t.get("mttr_n", {}).get("HIGH")] for t in trend]))
    f3 = [{"type": "scatter", "mode": "lines+markers", "name": "Build gate %", "x": weeks,
           "y": [t["build_gate"] for t in trend], "cliponaxis": False},
          {"type": "scatter", "mode": "lines+markers", "name": "Nightly %", "x": weeks, "y": [t["nightly"] for t in trend],
           "cliponaxis": False}]
    cov_target = Targets.from_policy(k["policy"]).coverage_pct
    target = _hline(cov_target, "#2a7a2a", f"target {fmt(float(cov_target), ' %')}")
    figs.append(("coverage_trend", f3, _layout("Scan coverage (%)", yaxis={"range": [0, 105]}, shapes=[target[0]],
                                               annotations=[target[1]]),
                 ["week", "build gate %", "nightly %"],
                 [[t["week"], fmt(t["build_gate"]), fmt(t["nightly"])] for t in trend]))
    figs += _direction_figures(trend)
    mix = [k["open_backlog"][s]["total"] for s in SEVERITIES]
    f4 = [{"type": "bar", "x": list(SEVERITIES), "y": mix, "marker": {"color": [SEV_COLORS[s] for s in SEVERITIES]}}]
    figs.append(("severity_mix", f4, _layout("Severity mix of the open backlog at T"), ["severity", "open"],
                 [[s, m] for s, m in zip(SEVERITIES, mix)]))
    for key, _, layout, _, _ in figs:
        if key != "severity_mix":
            layout["xaxis"].update(_week_ticks(weeks))
    return [{"id": key, "title": layout["title"]["text"], "json": {"data": data, "layout": layout}, "head": head,
             "rows": rows} for key, data, layout, head, rows in figs]


def _direction_figures(trend: list[dict]) -> list[tuple]:
    """Degree and direction: requirements met and controls passing (of those judged) per week, and the
    findings that arrived and were resolved each week. Weeks stored before contract 1.3 have no point."""
    weeks = [t["week"] for t in trend]
    pts = [t.get("degree") or {} for t in trend]

    def line(name, key, color):
        return {"type": "scatter", "mode": "lines+markers+text", "name": name, "x": weeks, "cliponaxis": False,
                "y": [p[key][0] if key in p else None for p in pts], "line": {"color": color}, "textposition": "top center",
                "text": [f"{p[key][0]}/{p[key][1]}" if key in p else "" for p in pts]}
    most = max([p[key][1] for p in pts for key in ("requirements", "controls") if key in p] or [1])
    f5 = [line("Requirements met", "requirements", "#1e7d32"), line("Controls passing", "controls", "#3d7bd9")]
    f6 = [{"type": "bar", "name": "New", "x": weeks, "y": [t.get("new") for t in trend], "marker": {"color": "#b3261e"}},
          {"type": "bar", "name": "Resolved", "x": weeks, "y": [t.get("resolved") for t in trend],
           "marker": {"color": "#1e7d32"}}]
    return [("degree_trend", f5, _layout("Requirements met and controls passing (of those judged)",
                                         yaxis={"range": [0, most + 1.5]}),
             ["week", "requirements met", "controls passing"],
             [[t["week"], "{}/{}".format(*p["requirements"]) if "requirements" in p else "n/a",
               "{}/{}".format(*p["controls"]) if "controls" in p else "n/a"] for t, p in zip(trend, pts)]),
            ("flow_trend", f6, _layout("Findings new and resolved each week", barmode="group"),
             ["week", "new", "resolved"], [[t["week"], t.get("new"), t.get("resolved")] for t in trend])]


APP_JS = """
(function () {
  var data = JSON.parse(document.getElementById('chart-data').textContent);
  data.forEach(function (c) {
    var el = document.getElementById('chart-' + c.id);
    if (el && window.Plotly) { Plotly.newPlot(el, c.json.data, c.json.layout, {displayModeBar: false, responsive: true}); }
  });
  var q = document.getElementById('finding-search'), sev = document.getElementById('finding-sev'),
      st = document.getElementById('finding-state'), rows = document.querySelectorAll('#findings tbody tr'),
      count = document.getElementById('finding-count');
  function apply() {
    var text = (q.value || '').toLowerCase(), s = sev.value, state = st.value, shown = 0;
    rows.forEach(function (r) {
      var ok = (!text || r.textContent.toLowerCase().indexOf(text) >= 0) && (!s || r.dataset.sev === s) &&
               (!state || r.dataset.state.indexOf(state) === 0);
      r.style.display = ok ? '' : 'none'; if (ok) { shown++; }
    });
    count.textContent = shown + ' shown';
  }
  [q, sev, st].forEach(function (e) { if (e) { e.addEventListener('input', apply); } });
  if (q) { apply(); }
  // printed: charts two to a row of an A4 landscape page, each narrower than half its printable width (281 mm,
  // about 1,060 CSS px) so nothing is wider than the page and the browser does not shrink every font to fit
  function fit(h, w) {
    data.forEach(function (c) {
      var el = document.getElementById('chart-' + c.id);
      if (el && window.Plotly && el.data) { Plotly.relayout(el, {height: h, width: w}); }
    });
  }
  var closed = [];
  window.addEventListener('beforeprint', function () {
    fit(145, 500);
    closed = Array.prototype.filter.call(document.querySelectorAll('details'), function (d) { return !d.open; });
    closed.forEach(function (d) { d.open = true; });      // the data behind each chart prints too
  });
  window.addEventListener('afterprint', function () {
    fit(320, null);
    closed.forEach(function (d) { d.open = false; });
  });
  // report.html#only-<section id>: that section alone (to share or screenshot one part of the week)
  var only = (location.hash.match(/^#only-([a-z0-9-]+)$/) || [])[1];
  if (only) {
    document.querySelectorAll('main > section, main > nav').forEach(function (s) {
      if (s.id !== only) { s.style.display = 'none'; }
    });
    window.scrollTo(0, 0);
  }
})();
"""


_APPROVAL = re.compile(r"(approv\w*[^.;,]*|sign-?off[^.;,]*|signed off[^.;,]*|\b[A-Z][A-Z0-9]{1,9}-\d+\b)", re.I)


def finding_groups(findings: list[dict]) -> dict:
    """Open findings grouped by image and by package (display only: every count is of findings.csv rows)."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    images: dict = {}
    packages: dict = {}
    for f in findings:
        if not f["state"].startswith(OPEN_STATES):
            continue
        g = images.setdefault(f["lineage"], {"lineage": f["lineage"], "by_sev": {s: 0 for s in SEVERITIES},
                                             "total": 0, "overdue": 0, "fixable": 0})
        g["by_sev"][f["severity"]] += 1
        g["total"] += 1
        g["overdue"] += f["state"].startswith("overdue")
        g["fixable"] += bool(f["fixed_version"])
        p = packages.setdefault(f["pkg_name"], {"pkg_name": f["pkg_name"], "worst": f["severity"], "total": 0,
                                                "lineages": set(), "fixed_versions": set(), "fixable": 0,
                                                "fixable_in": set()})
        p["total"] += 1
        p["lineages"].add(f["lineage"])
        if rank[f["severity"]] < rank[p["worst"]]:
            p["worst"] = f["severity"]
        if f["fixed_version"]:
            p["fixable"] += 1
            p["fixable_in"].add(f["lineage"])
            p["fixed_versions"].update(v.strip() for v in str(f["fixed_version"]).split(","))
    out_images = sorted(images.values(), key=lambda g: tuple(-g["by_sev"][s] for s in SEVERITIES) + (g["lineage"],))
    out_packages = sorted(({**p, "fixed_versions": sorted(p["fixed_versions"]), "fixable_lineages": len(p["fixable_in"])}
                           for p in packages.values()), key=lambda p: (rank[p["worst"]], -p["total"], p["pkg_name"] or ""))
    return {"images": out_images, "packages": out_packages}


def exception_details(entries: list[dict], findings: list[dict]) -> list[dict]:
    """Each exception line with what it covers at T (the open findings whose excepted_by names it), the
    highest severity among them, and the approval its reason text records, if any."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    out = []
    for x in entries:
        ref = f"exceptions/{x['scope']}/{x['snapshot_date']}/{x['file']}:{x['line']}"
        covered = [f for f in findings if f.get("excepted_by") and ref in f["excepted_by"].split("; ")]
        worst = min((f["severity"] for f in covered), key=lambda s: rank[s], default=None)
        approval = _APPROVAL.search(x.get("reason") or "")
        out.append({**x, "covers": len(covered), "covers_lineages": sorted({f["lineage"] for f in covered}),
                    "severity": worst, "approval": approval.group(0).strip() if approval else None})
    return out


def render_report(k: dict, populations: dict, trend: list[dict], data_quality: dict, meta: dict) -> str:
    charts = _figures(trend, k)
    chart_data = json_block([{"id": c["id"], "json": c["json"]} for c in charts])
    pjs = plotly_js()
    prev = trend[-2] if len(trend) >= 2 else None
    csp = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
           f"script-src {_csp_hash(pjs)} {_csp_hash(APP_JS)}; base-uri 'none'; form-action 'none'")
    exc_rows = exception_details(populations["exceptions"], populations["findings"])
    view = WeekKpis(k)
    cards = judge_targets(view, Targets.from_policy(k["policy"]), populations["findings"])
    open_rows = [f for f in populations["findings"] if f["state"].startswith(OPEN_STATES)]
    return ENV.get_template("report.html.j2").render(
        view=view, cards=cards, period=period(k["period_start"], k["period_end"]),
        groups=finding_groups(populations["findings"]),
        k=k, charts=charts, chart_data=chart_data, plotly_js=Markup(pjs), app_js=Markup(APP_JS), csp=csp,
        findings=populations["findings"][:PAGE_ROWS], findings_total=len(populations["findings"]),
        fix_first=sorted(open_rows, key=fix_first_key)[:FIX_FIRST_ROWS], open_total=len(open_rows),
        exceptions=exc_rows, coverage_rows=populations["coverage"], deploys=populations["deploys"],
        config_rows=populations["config_and_secrets"], ticket_rows=populations.get("tickets", []),
        prev=prev, dq=data_quality, meta=meta, severities=SEVERITIES, sev_colors=SEV_COLORS, page_rows=PAGE_ROWS)


def render_index(rows: list[dict]) -> str:
    """rows: newest first. The 12 newest weeks draw the trend of requirements met and controls passing."""
    recent = [r for r in rows[:12] if r.get("requirements")][::-1]
    return ENV.get_template("index.html.j2").render(rows=rows, recent=recent, direction=direction(recent))


def direction(points: list[dict], back: int = 4) -> str:
    """'2026-W48: 11 of 12 requirements met, up from 9 of 12 in 2026-W44 (4 weeks before)': the newest week
    against the one `back` weeks before it (or the oldest shown), compared as shares of those judged."""
    if not points:
        return ""
    last = points[-1]
    met, judged = last["requirements"]
    head = f"{last['week']}: {met} of {judged} requirements met"
    if len(points) < 2:
        return head + "."
    before = points[max(0, len(points) - 1 - back)]
    m0, j0 = before["requirements"]
    now, then = (met / judged if judged else 0), (m0 / j0 if j0 else 0)
    word = "up" if now > then else "down" if now < then else "level"
    return f"{head}, {word} {'with' if word == 'level' else 'from'} {m0} of {j0} in {before['week']}" + \
        f" ({len(points) - 1 - points.index(before)} weeks before)."
