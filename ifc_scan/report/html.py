"""report.html and index.html: jinja2 (autoescape on) + plotly, one self-contained file.

Untrusted scan text only ever reaches the page through jinja2 escaping or inside a JSON data block
whose `<` are escaped; the page's Content-Security-Policy allows only its own inline scripts, by hash.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache

import plotly.graph_objects as go
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
SEV_COLORS = {"CRITICAL": "#b3261e", "HIGH": "#e8710a", "MEDIUM": "#f2b600", "LOW": "#3d7bd9", "UNKNOWN": "#8a8a8a"}
PAGE_ROWS = 200   # findings shown in the page; the CSV holds them all

ENV = Environment(loader=PackageLoader("ifc_scan.report", "templates"), autoescape=select_autoescape(["html", "j2"]),
                  trim_blocks=True, lstrip_blocks=True)


@lru_cache(maxsize=1)
def plotly_js() -> str:
    from plotly.offline import get_plotlyjs
    return get_plotlyjs()


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


def _figures(trend: list[dict], k: dict) -> list[dict]:
    weeks = [t["week"][5:] for t in trend]   # "W47": short axis labels; the tables give the year
    figs = []
    f1 = go.Figure()
    for s in SEVERITIES:
        f1.add_bar(name=s, x=weeks, y=[t["open"][s] for t in trend], marker_color=SEV_COLORS[s])
    f1.update_layout(barmode="stack", title="Open findings by severity (at each week's end)")
    figs.append(("open_trend", f1, ["week"] + list(SEVERITIES),
                 [[t["week"]] + [t["open"][s] for s in SEVERITIES] for t in trend]))
    f2 = go.Figure()
    for s, c in (("CRITICAL", SEV_COLORS["CRITICAL"]), ("HIGH", SEV_COLORS["HIGH"])):
        f2.add_scatter(name=f"MTTR {s} (mean h)", x=weeks, y=[t["mttr"][s] for t in trend], mode="lines+markers",
                       line_color=c, connectgaps=False)
    f2.add_hline(y=24, line_dash="dot", line_color=SEV_COLORS["CRITICAL"], annotation_text="CRITICAL target 24 h")
    f2.add_hline(y=168, line_dash="dot", line_color=SEV_COLORS["HIGH"], annotation_text="HIGH target 168 h")
    f2.update_layout(title="Mean time to remediate (hours; gaps = no fixes that week)")
    figs.append(("mttr_trend", f2, ["week", "MTTR CRITICAL mean h", "MTTR HIGH mean h"],
                 [[t["week"], fmt(t["mttr"]["CRITICAL"]), fmt(t["mttr"]["HIGH"])] for t in trend]))
    f3 = go.Figure()
    f3.add_scatter(name="Build gate %", x=weeks, y=[t["build_gate"] for t in trend], mode="lines+markers")
    f3.add_scatter(name="Nightly %", x=weeks, y=[t["nightly"] for t in trend], mode="lines+markers")
    f3.update_layout(title="Scan coverage (%)", yaxis_range=[0, 105])
    figs.append(("coverage_trend", f3, ["week", "build gate %", "nightly %"],
                 [[t["week"], fmt(t["build_gate"]), fmt(t["nightly"])] for t in trend]))
    mix = [k["open_backlog"][s]["total"] for s in SEVERITIES]
    f4 = go.Figure(go.Bar(x=list(SEVERITIES), y=mix, marker_color=[SEV_COLORS[s] for s in SEVERITIES]))
    f4.update_layout(title="Severity mix of the open backlog at T")
    figs.append(("severity_mix", f4, ["severity", "open"], [[s, m] for s, m in zip(SEVERITIES, mix)]))
    out = []
    for key, fig, head, rows in figs:
        fig.update_layout(margin=dict(l=40, r=20, t=50, b=40), height=320, template="plotly_white",
                          legend=dict(orientation="h"))
        out.append({"id": key, "title": fig.layout.title.text, "json": json.loads(fig.to_json()), "head": head, "rows": rows})
    return out


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
    return ENV.get_template("report.html.j2").render(
        k=k, charts=charts, chart_data=chart_data, plotly_js=Markup(pjs), app_js=Markup(APP_JS), csp=csp,
        findings=populations["findings"][:PAGE_ROWS], findings_total=len(populations["findings"]),
        exceptions=exc_rows, coverage_rows=populations["coverage"], deploys=populations["deploys"],
        config_rows=populations["config_and_secrets"],
        prev=prev, dq=data_quality, meta=meta, severities=SEVERITIES, sev_colors=SEV_COLORS, page_rows=PAGE_ROWS)


def render_index(rows: list[dict]) -> str:
    return ENV.get_template("index.html.j2").render(rows=rows)
