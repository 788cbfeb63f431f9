"""report.html: one self-contained page (no network, no script, opens from disk).

Sections: the verdict, the verdict table (candidate x loss, with diagnoses), the metamorphic
checks (candidate x check, with why a check does not apply), a per-loss
accuracy leaderboard, the semantic profile (conformance/profile.py, when the run made
one), the failure classes with their reproducers inline, plots of the error in ulps
against the exact value versus the largest logit magnitude and versus the number of
classes C, per candidate and dtype (SVG written here: no plotting library), and the
findings. Everything comes from the results model (report.json); the reproducers'
``repro.py`` files are read from the directories the model names, when they exist.
"""
from __future__ import annotations

import html
import math
import os
import statistics
from typing import Any

from conformance.model import RunResults
from conformance.reports._aggregate import (
    METAMORPHIC_NOTE, aggregate, as_dict, class_line, diagnoses_of, diagnosis_note, fmt_ulp, metamorphic_cells,
    run_verdict, worst_case_note,
)

FILENAME = "report.html"
#: Points per plot (the smallest and largest errors are kept when a run has more).
MAX_POINTS = 4000
#: Lines of an inlined repro.py.
MAX_REPRO_LINES = 80
#: Colours of the candidates' series (Okabe-Ito, readable by colour-blind readers).
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}.other{color:#777}
.banner{display:inline-block;padding:.3em .8em;border-radius:.3em;color:#fff;font-weight:700}
.banner.pass{background:#1a7f37;color:#fff}.banner.fail{background:#cf222e;color:#fff}
.banner.partial,.banner.empty{background:#9a6700;color:#fff}
pre{background:#f6f8fa;padding:.6em;overflow:auto;font-size:.8em;max-height:28em}
.plots{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}figcaption{font-size:.85em;color:#555}
details{margin:.4em 0}summary{cursor:pointer}
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _verdict_span(v: str) -> str:
    cls = "pass" if v == "pass" else "fail" if v == "fail" else "other"
    return f'<span class="{cls}">{_e(v)}</span>'


def render_html(results: RunResults | dict[str, Any]) -> str:
    """The page as a string."""
    run = as_dict(results)
    rows = aggregate(run)
    verdict = run_verdict(run)
    cfg = run.get("config") or {}
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           "<title>nbxent-conformance report</title>", f"<style>{_CSS}</style></head><body>",
           "<h1>nbxent-conformance report</h1>",
           f'<p><span class="banner {_e(verdict)}" id="verdict">{_e(verdict.upper())}</span> '
           f"seed {_e(run.get('seed'))} · {sum((run.get('cases_run') or {}).values())} cases · "
           f"{len(run.get('results') or [])} check results · dtypes {_e(', '.join(cfg.get('dtypes') or []))}"
           + (f" · <b>{_e(run.get('partial'))}</b>" if run.get("partial") else "") + "</p>"]
    out += _verdict_table(run, rows)
    out += _metamorphic(rows)
    out += _leaderboard(run, rows)
    out += _profile(run.get("profile") or {})
    out += _classes(run)
    out += _plots(run)
    out += _findings(run)
    env = run.get("environment") or {}
    out.append("<h2>Environment</h2><p>" + " · ".join(f"{_e(k)} {_e(v)}" for k, v in env.items()) + "</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_html(results: RunResults | dict[str, Any], report_dir: str) -> str:
    """Write ``<report_dir>/report.html``; returns its path."""
    path = os.path.join(report_dir, FILENAME)
    with open(path, "w", encoding="utf-8") as f:
        f.write(render_html(results))
    return path


def _verdict_table(run, rows) -> list[str]:
    out = ['<h2>Verdicts</h2><table id="verdicts"><tr><th>candidate</th><th>loss</th><th>verdict</th>'
           "<th>diagnosis</th><th>cases</th><th>checks passed</th><th>worst error (ulp vs exact)</th>"
           "<th>differs from torch</th><th>not supported</th></tr>"]
    for row in rows:
        ran = [c for c in row.cells if c.verdict in ("pass", "fail")]
        passed = sum(c.verdict == "pass" for c in ran)
        out.append(f"<tr><td>{_e(row.candidate)}</td><td>{_e(row.loss)}</td><td>{_verdict_span(row.verdict)}</td>"
                   f"<td>{_e(diagnosis_note(diagnoses_of(run, row.candidate, row.loss)))}</td>"
                   f'<td class="num">{row.n_cases or ""}</td><td class="num">{passed}/{len(ran)}</td>'
                   f'<td class="num">{_e(fmt_ulp(row.worst_ulp))}</td><td class="num">{row.torch_differs or ""}</td>'
                   f"<td>{_e(', '.join(row.lacking))}</td></tr>")
    out.append("</table><p><small>worst error: the largest error of a checked element, in ulps of the "
               "candidate's dtype at the exact value; the verdict uses the tolerance policy "
               "(conformance/tolerances.py), not this column.</small></p>")
    return out


def _metamorphic(rows) -> list[str]:
    cells = metamorphic_cells(rows)
    if not cells:
        return []
    out = ['<h2>Metamorphic checks</h2><table id="metamorphic"><tr><th>candidate</th><th>loss</th><th>check</th>'
           "<th>verdict</th><th>cases / why not</th></tr>"]
    for c in cells:
        out.append(f"<tr><td>{_e(c.candidate)}</td><td>{_e(c.loss)}</td><td>{_e(c.check)}</td>"
                   f"<td>{_verdict_span(c.verdict)}</td><td>{_e(worst_case_note(c))}</td></tr>")
    out.append(f"</table><p><small>{_e(METAMORPHIC_NOTE)}</small></p>")
    return out


def _leaderboard(run, rows) -> list[str]:
    """Per loss: candidates by their median and largest value error in ulps over every judged case."""
    pts: dict[tuple[str, str], list[float]] = {}
    for p in run.get("accuracy") or []:
        if p[3] == "value":
            pts.setdefault((p[1], p[0]), []).append(float(p[6]))
    verdicts = {(r.loss, r.candidate): r.verdict for r in rows}
    out = ['<h2>Accuracy leaderboard</h2><table id="leaderboard"><tr><th>loss</th><th>rank</th><th>candidate</th>'
           "<th>median ulp</th><th>max ulp</th><th>cases</th><th>verdict</th></tr>"]
    for loss in dict.fromkeys(r.loss for r in rows):
        board = sorted(((statistics.median(v), max(v), len(v), c) for (lo, c), v in pts.items() if lo == loss),
                       key=lambda t: (t[0], t[1], t[3]))
        for rank, (med, mx, n, cand) in enumerate(board, 1):
            out.append(f"<tr><td>{_e(loss)}</td><td class='num'>{rank}</td><td>{_e(cand)}</td>"
                       f"<td class='num'>{med:.3g}</td><td class='num'>{mx:.3g}</td><td class='num'>{n}</td>"
                       f"<td>{_verdict_span(verdicts.get((loss, cand), ''))}</td></tr>")
    out.append("</table><p><small>value checks of every judged case that returned a value "
               "(catalogue and fuzzing), in ulps of the candidate's dtype at the exact value.</small></p>")
    return out


def _profile(prof: dict) -> list[str]:
    if not prof.get("axes"):
        return ['<h2>Semantic profile</h2><p id="profile">Not made in this run '
                "(<code>nbxent-conformance run --profile</code>, or <code>nbxent-conformance profile</code>).</p>"]
    specs = prof.get("candidates") or []
    out = ['<h2>Semantic profile</h2><table id="profile"><tr><th>axis</th><th>torch 2.13 does</th>'
           + "".join(f"<th>{_e(s)}</th>" for s in specs) + "</tr>"]
    for a in prof["axes"]:
        cells = "".join(f"<td>{_e((a['cells'].get(s) or {}).get('text', ''))}</td>" for s in specs)
        out.append(f"<tr><td>{_e(a['axis'])}</td><td>{_e(a['torch'])}</td>{cells}</tr>")
    out.append("</table><p><small>torch = the same as torch 2.13 within the harness's tolerance; "
               "§N = docs/semantics.md §N; conventions: docs/conventions.md.</small></p>")
    return out


def _repro_text(path: str | None) -> str:
    if not path:
        return ""
    try:
        with open(os.path.join(path, "repro.py"), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    more = len(lines) - MAX_REPRO_LINES
    return "\n".join(lines[:MAX_REPRO_LINES]) + (f"\n# ... {more} more lines in repro.py" if more > 0 else "")


def _classes(run) -> list[str]:
    classes = run.get("classes") or []
    out = [f'<h2>Failure classes ({len(classes)})</h2><div id="classes">']
    if not classes:
        out.append("<p>No failure.</p>")
    for c in classes:
        out.append(f"<details open><summary><b>{_e(c.get('class_id'))}</b>: {_e(class_line(c))}</summary>"
                   f"<p>{_e(c.get('message'))}</p>")
        if c.get("hint"):
            out.append(f"<p><i>{_e(c['hint'])}</i></p>")
        if c.get("reproducer"):
            out.append(f"<p>reproducer: <code>python {_e(os.path.join(c['reproducer'], 'repro.py'))}</code></p>")
            text = _repro_text(c["reproducer"])
            if text:
                out.append(f'<pre class="repro">{_e(text)}</pre>')
        out.append("</details>")
    out.append("</div>")
    return out


def _findings(run) -> list[str]:
    fs = run.get("findings") or []
    out = [f"<h2>Findings ({len(fs)})</h2><ul id='findings'>"]
    out += [f"<li><b>{_e(f.get('kind'))}</b> ({_e(f.get('loss'))}): {_e(f.get('message'))}</li>" for f in fs]
    return out + ["</ul>"]


# --------------------------------------------------------------------------- plots
def _plots(run) -> list[str]:
    pts = [p for p in run.get("accuracy") or [] if p[3] == "value"]
    out = ['<h2>Error against the exact value</h2>']
    if not pts:
        return out + ["<p>No accuracy points in this run.</p>"]
    cands = list(dict.fromkeys(p[0] for p in pts))
    colour = {c: COLOURS[i % len(COLOURS)] for i, c in enumerate(cands)}
    out.append("<p>" + " ".join(f'<span style="color:{colour[c]}">●</span> {_e(c)}' for c in cands) + "</p>")
    out.append('<div class="plots">')
    for dtype in sorted({p[2] for p in pts}):
        mine = [p for p in pts if p[2] == dtype]
        out.append(_scatter(mine, 4, "max |input| (largest logit magnitude)", f"value error vs logit magnitude, {dtype}",
                            colour, f"plot-logit-{dtype}"))
        withc = [p for p in mine if p[5] is not None]
        if withc:
            out.append(_scatter(withc, 5, "C (classes)", f"value error vs C, {dtype} (cross_entropy, nll_loss)",
                                colour, f"plot-classes-{dtype}"))
    out.append("</div><p><small>one point per judged case: its value check's largest error, in ulps of the "
               "dtype at the exact value (log scales; 0 is drawn at the axis floor).</small></p>")
    return out


def _thin(pts: list) -> list:
    """At most MAX_POINTS of ``(point, x, y)``, evenly spread over the errors' order (both extremes kept)."""
    if len(pts) <= MAX_POINTS:
        return pts
    pts = sorted(pts, key=lambda t: t[0][6])
    step = len(pts) / MAX_POINTS
    return [pts[int(i * step)] for i in range(MAX_POINTS - 1)] + [pts[-1]]


def _scatter(pts: list, xi: int, xlabel: str, title: str, colour: dict, ident: str) -> str:
    """An SVG scatter plot on log-log axes of point[xi] against the ulp error (point[6])."""
    w, h, ml, mr, mt, mb = 520, 320, 56, 12, 28, 44
    floor_x, floor_y = 1e-3, 1e-3
    lx = [math.log10(max(float(p[xi]), floor_x)) for p in pts]
    ly = [math.log10(max(float(p[6]), floor_y)) for p in pts]
    x0, x1 = math.floor(min(lx)), max(math.ceil(max(lx)), math.floor(min(lx)) + 1)
    y0, y1 = math.floor(min(ly)), max(math.ceil(max(ly)), math.floor(min(ly)) + 1)
    sx = lambda v: ml + (v - x0) / (x1 - x0) * (w - ml - mr)        # noqa: E731
    sy = lambda v: h - mb - (v - y0) / (y1 - y0) * (h - mt - mb)    # noqa: E731
    out = [f'<figure><svg id="{_e(ident)}" class="plot" xmlns="http://www.w3.org/2000/svg" width="{w}" '
           f'height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{_e(title)}">',
           f'<rect x="{ml}" y="{mt}" width="{w - ml - mr}" height="{h - mt - mb}" fill="#fff" stroke="#999"/>']
    xstep, ystep = max(1, math.ceil((x1 - x0) / 8)), max(1, math.ceil((y1 - y0) / 8))   # at most ~9 labels
    for d in range(x0, x1 + 1, xstep):
        out.append(f'<line x1="{sx(d):.1f}" y1="{h - mb}" x2="{sx(d):.1f}" y2="{mt}" stroke="#eee"/>'
                   f'<text x="{sx(d):.1f}" y="{h - mb + 14}" font-size="10" text-anchor="middle">1e{d}</text>')
    for d in range(y0, y1 + 1, ystep):
        out.append(f'<line x1="{ml}" y1="{sy(d):.1f}" x2="{w - mr}" y2="{sy(d):.1f}" stroke="#eee"/>'
                   f'<text x="{ml - 4}" y="{sy(d) + 3:.1f}" font-size="10" text-anchor="end">1e{d}</text>')
    # rings rather than discs: candidates with the same error stay visible on top of each other
    for p in _thin(list(zip(pts, lx, ly))):
        q, a, b = p
        out.append(f'<circle cx="{sx(a):.1f}" cy="{sy(b):.1f}" r="3" fill="none" stroke="{colour[q[0]]}" stroke-width="1.2">'
                   f"<title>{_e(q[0])} {_e(q[1])} {_e(q[2])}: {q[6]:g} ulp at {_e(xlabel.split(' ')[0])} "
                   f"{q[xi]:g}</title></circle>")
    out.append(f'<text x="{(ml + w - mr) / 2}" y="{h - 8}" font-size="11" text-anchor="middle">{_e(xlabel)}</text>'
               f'<text x="14" y="{(mt + h - mb) / 2}" font-size="11" text-anchor="middle" '
               f'transform="rotate(-90 14 {(mt + h - mb) / 2})">error (ulp)</text>'
               f'<text x="{ml}" y="18" font-size="12" font-weight="600">{_e(title)}</text></svg>'
               f"<figcaption>{len(pts)} cases</figcaption></figure>")
    return "".join(out)
