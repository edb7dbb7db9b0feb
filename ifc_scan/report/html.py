"""report.html and index.html: jinja2 (autoescape on) + plotly, one self-contained file.

Untrusted scan text only ever reaches the page through jinja2 escaping or inside a JSON data block
whose `<` are escaped; the page's Content-Security-Policy allows only its own inline scripts, by hash.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from importlib import resources

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from ifc_scan.kpis.targets import Targets, judge_targets
from ifc_scan.kpis.view import WeekKpis

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
SEV_COLORS = {"CRITICAL": "#b3261e", "HIGH": "#e8710a", "MEDIUM": "#f2b600", "LOW": "#3d7bd9", "UNKNOWN": "#8a8a8a"}
PAGE_ROWS = 200   # findings shown in the page; the CSV holds them all

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


def json_block(data) -> Markup:
    """JSON safe to embed in <script type="application/json">: no '<', '>' or '&' survive unescaped."""
    text = json.dumps(data, sort_keys=True).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def fmt(v, suffix=""):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.2f}{suffix}"
    return f"{v}{suffix}"


def when(v):
    """'2026-11-20T05:09:04.234148Z' -> '2026-11-20 05:09Z' for reading; CSV and JSON keep full precision."""
    if not v:
        return v
    return v[:10] + " " + v[11:16] + "Z" if len(v) >= 16 and v[10] == "T" else v


ENV.filters["fmt"] = fmt
ENV.filters["when"] = when


LAYOUT = {"margin": {"l": 40, "r": 20, "t": 50, "b": 40}, "height": 320, "paper_bgcolor": "white",
          "plot_bgcolor": "white", "font": {"color": "#2a3f5f"}, "legend": {"orientation": "h"},
          "xaxis": {"gridcolor": "#EBF0F8", "automargin": True}, "yaxis": {"gridcolor": "#EBF0F8", "zeroline": False}}


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


def _figures(trend: list[dict], k: dict) -> list[dict]:
    weeks = [t["week"][5:] for t in trend]   # "W47": short axis labels; the tables give the year
    figs = []
    f1 = [{"type": "bar", "name": s, "x": weeks, "y": [t["open"][s] for t in trend], "marker": {"color": SEV_COLORS[s]}}
          for s in SEVERITIES]
    figs.append(("open_trend", f1, _layout("Open findings by severity (at each week's end)", barmode="stack"),
                 ["week"] + list(SEVERITIES), [[t["week"]] + [t["open"][s] for s in SEVERITIES] for t in trend]))
    f2 = [{"type": "scatter", "mode": "lines+markers", "name": f"MTTR {s} (mean h)", "x": weeks,
           "y": [t["mttr"][s] for t in trend], "line": {"color": SEV_COLORS[s]}, "connectgaps": False}
          for s in ("CRITICAL", "HIGH")]
    lines = [_hline(k["policy"]["sla_hours"]["CRITICAL"] or 24, SEV_COLORS["CRITICAL"], "CRITICAL SLA"),
             _hline(k["policy"]["sla_hours"]["HIGH"] or 168, SEV_COLORS["HIGH"], "HIGH SLA")]
    figs.append(("mttr_trend", f2, _layout("Mean time to remediate (hours; gaps = no fixes that week)",
                                           shapes=[a for a, _ in lines], annotations=[b for _, b in lines]),
                 ["week", "MTTR CRITICAL mean h", "MTTR HIGH mean h"],
                 [[t["week"], fmt(t["mttr"]["CRITICAL"]), fmt(t["mttr"]["HIGH"])] for t in trend]))
    f3 = [{"type": "scatter", "mode": "lines+markers", "name": "Build gate %", "x": weeks,
           "y": [t["build_gate"] for t in trend]},
          {"type": "scatter", "mode": "lines+markers", "name": "Nightly %", "x": weeks, "y": [t["nightly"] for t in trend]}]
    figs.append(("coverage_trend", f3, _layout("Scan coverage (%)", yaxis={"range": [0, 105]}),
                 ["week", "build gate %", "nightly %"],
                 [[t["week"], fmt(t["build_gate"]), fmt(t["nightly"])] for t in trend]))
    mix = [k["open_backlog"][s]["total"] for s in SEVERITIES]
    f4 = [{"type": "bar", "x": list(SEVERITIES), "y": mix, "marker": {"color": [SEV_COLORS[s] for s in SEVERITIES]}}]
    figs.append(("severity_mix", f4, _layout("Severity mix of the open backlog at T"), ["severity", "open"],
                 [[s, m] for s, m in zip(SEVERITIES, mix)]))
    return [{"id": key, "title": layout["title"]["text"], "json": {"data": data, "layout": layout}, "head": head,
             "rows": rows} for key, data, layout, head, rows in figs]


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
})();
"""


def render_report(k: dict, populations: dict, trend: list[dict], data_quality: dict, meta: dict) -> str:
    charts = _figures(trend, k)
    chart_data = json_block([{"id": c["id"], "json": c["json"]} for c in charts])
    pjs = plotly_js()
    prev = trend[-2] if len(trend) >= 2 else None
    csp = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
           f"script-src {_csp_hash(pjs)} {_csp_hash(APP_JS)}; base-uri 'none'; form-action 'none'")
    exc_rows = populations["exceptions"]
    view = WeekKpis(k)
    cards = judge_targets(view, Targets.from_policy(k["policy"]), populations["findings"])
    return ENV.get_template("report.html.j2").render(
        view=view, cards=cards,
        k=k, charts=charts, chart_data=chart_data, plotly_js=Markup(pjs), app_js=Markup(APP_JS), csp=csp,
        findings=populations["findings"][:PAGE_ROWS], findings_total=len(populations["findings"]),
        exceptions=exc_rows, coverage_rows=populations["coverage"], deploys=populations["deploys"],
        config_rows=populations["config_and_secrets"],
        prev=prev, dq=data_quality, meta=meta, severities=SEVERITIES, sev_colors=SEV_COLORS, page_rows=PAGE_ROWS)


def render_index(rows: list[dict]) -> str:
    return ENV.get_template("index.html.j2").render(rows=rows)
