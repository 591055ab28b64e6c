"""``--report FILE.html``: one self-contained page to read the labels instead of the CSV.

No server, no network: the results are embedded as JSON and drawn by a few lines of
JavaScript. A sortable, filterable table (label, confidence, top 3, notes); each row opens
to the track's probability timeline (drawn only when opened, so 10,000 tracks stay fast)
and an audio player (a relative link to the file: the page works as long as it keeps its
place beside the music); with ``--evaluate``, the confusion matrix and the mistakes.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from slapp.store.atomic import atomic_write

MAX_POINTS = 48  # timeline points kept per track (top class and its probability)

_STYLE = """body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .3em}p.lead{margin:.2em 0 1em;color:#444;max-width:60em}
.bar{display:flex;gap:.8em;align-items:center;margin:.6em 0;flex-wrap:wrap}
table{border-collapse:collapse;width:100%}th,td{padding:.3em .5em;border-bottom:1px solid #ddd;
text-align:left;vertical-align:top}th{cursor:pointer;background:#f4f4f4;position:sticky;top:0}
tr.row:hover{background:#f8f8ff;cursor:pointer}.low{color:#a33}.note{color:#8a5a00}
.chip{display:inline-block;padding:0 .4em;border-radius:.3em;color:#fff;font-size:.9em}
.details td{background:#fafafa}.cm td,.cm th{text-align:center;min-width:2.5em}
.cm td.hit{background:#dfd}.cm td.miss{background:#fdd}svg{display:block}"""

_SCRIPT = r"""
const D = JSON.parse(document.getElementById('data').textContent);
const C = D.classes, colors = C.map((_, i) => `hsl(${(i * 360 / C.length) | 0},60%,45%)`);
let rows = D.tracks, key = 'confidence', dir = -1;
const chip = l => `<span class="chip" style="background:${colors[C.indexOf(l)]}">${esc(l)}</span>`;
function esc(s) { return String(s).replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c])); }
function timeline(t) {
  if (!t.tl || !t.tl.length) return '<i>no timeline</i>';
  const w = 600, h = 60, bw = w / t.tl.length;
  return `<svg width="${w}" height="${h + 14}">` + t.tl.map(([c, p], i) =>
    `<rect x="${i * bw}" y="${h - p * h}" width="${Math.max(1, bw - 1)}" height="${p * h}" fill="${colors[c]}"><title>${C[c]} ${p}</title></rect>`
  ).join('') + `<text x="0" y="${h + 12}" font-size="10">start</text><text x="${w - 30}" y="${h + 12}" font-size="10">end</text></svg>`;
}
const PAGE = 300;  // rows drawn at a time: 10,000 tracks open as fast as 300
let shown = [], limit = PAGE;
function row(t) {
  return t.error ?
    `<tr><td>${esc(t.path)}</td><td colspan="4" class="low">failed: ${esc(t.error)}</td></tr>` :
    `<tr class="row" data-i="${t.i}"><td>${esc(t.path)}</td><td>${chip(t.label)}</td>
     <td class="${t.check ? 'low' : ''}">${t.confidence.toFixed(2)}</td>
     <td>${t.top.map(([c, s]) => `${esc(c)} ${s.toFixed(2)}`).join(', ')}</td>
     <td class="note">${t.notes.map(esc).join('<br>')}</td></tr>`;
}
function render() {
  const q = document.getElementById('q').value.toLowerCase(), lab = document.getElementById('label').value;
  const low = document.getElementById('low').checked;
  shown = rows.filter(t => (!lab || t.label === lab) && (!low || t.check)
    && (t.path + ' ' + t.notes.join(' ') + ' ' + t.label).toLowerCase().includes(q));
  shown.sort((a, b) => (a[key] > b[key] ? 1 : a[key] < b[key] ? -1 : 0) * dir);
  document.getElementById('count').textContent = `${shown.length} of ${rows.length} tracks`;
  limit = PAGE;
  document.getElementById('body').innerHTML = shown.slice(0, limit).map(row).join('');
}
new IntersectionObserver(entries => {  // near the end of the table: draw the next rows
  if (!entries[0].isIntersecting || limit >= shown.length) return;
  document.getElementById('body').insertAdjacentHTML('beforeend', shown.slice(limit, limit + PAGE).map(row).join(''));
  limit += PAGE;
}, {rootMargin: '600px'}).observe(document.getElementById('more'));
rows.forEach((t, i) => t.i = i);
document.getElementById('body').addEventListener('click', e => {
  const tr = e.target.closest('tr.row'); if (!tr) return;
  if (tr.nextElementSibling && tr.nextElementSibling.classList.contains('details')) { tr.nextElementSibling.remove(); return; }
  const t = rows[+tr.dataset.i], d = document.createElement('tr'); d.className = 'details';
  d.innerHTML = `<td colspan="5">${timeline(t)}<audio controls preload="none" src="${encodeURI(t.src)}"></audio></td>`;
  tr.after(d);
});
document.querySelectorAll('th[data-k]').forEach(th => th.onclick = () => {
  dir = key === th.dataset.k ? -dir : (th.dataset.k === 'confidence' ? -1 : 1); key = th.dataset.k; render(); });
['q', 'label', 'low'].forEach(id => document.getElementById(id).oninput = render);
document.getElementById('label').innerHTML = '<option value="">all labels</option>' +
  C.map(c => `<option>${esc(c)}</option>`).join('');
render();
if (location.hash === '#open') document.querySelector('tr.row')?.click();  // for screenshots
"""


def _track(r, folder: Path, min_confidence: float) -> dict:
    src = os.path.relpath(Path(r.path).resolve(), folder.resolve())
    out = {"path": r.path, "src": Path(src).as_posix(), "label": r.label or "",
           "confidence": r.confidence or 0.0, "notes": list(r.notes), "error": r.error,
           "top": [[c, round(s, 3)] for c, s in r.top(3)],
           "check": bool(r.error) or bool(r.notes) or (r.confidence or 0) < min_confidence}
    if r.timeline:
        step = max(1, -(-len(r.timeline) // MAX_POINTS))
        classes = list(r.scores)
        points = []
        for i in range(0, len(r.timeline), step):
            row = r.timeline[i]
            points.append([classes.index(row["label"]), round(row["scores"][row["label"]], 2)])
        out["tl"] = points
    return out


def _confusion(truth, classes: list[str]) -> str:
    if not truth or not truth["count"]:
        return ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in classes)
    body = "".join(
        f"<tr><th>{html.escape(c)}</th>" + "".join(
            f"<td class=\"{'hit' if i == j else 'miss' if n else ''}\">{n or ''}</td>"
            for j, n in enumerate(row)) + "</tr>"
        for i, (c, row) in enumerate(zip(classes, truth["confusion"])))
    return (f"<h2>Against the folder names: {truth['right']} of {truth['count']} right "
            f"({truth['right'] / truth['count']:.2f})</h2><p>Rows: the folder (truth); "
            f"columns: the label.</p><table class=\"cm\"><tr><th></th>{head}</tr>{body}"
            "</table>")


def write_page(path: Path, report, *, min_confidence: float = 0.5) -> None:
    """Write the page for ``report`` (a :class:`~slapp.stages.label.outputs.PredictReport`)
    atomically to ``path``."""
    folder = path.parent
    data = {"classes": report.classes,
            "tracks": [_track(r, folder, min_confidence) for r in report.results]}
    done = [r for r in report.results if not r.error]
    counts = ", ".join(f"{c} {sum(r.label == c for r in done)}" for c in report.classes
                       if any(r.label == c for r in done))
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    text = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>slapp labels: {len(report.results)} tracks</title><style>{_STYLE}</style></head><body>
<h1>Genre labels for {len(report.results)} tracks</h1>
<p class="lead">Each track was cut into short snippets; the model scored every snippet and
the scores were summed into one label. <b>Confidence</b> is the label's share of that sum
(1.00: every snippet agreed). Tracks in red are below {min_confidence:g} or have notes
(audio unlike what the model was trained on): check those before trusting them. Click a
row to see how the label changes along the track and to listen. Model bundle:
{html.escape(str(report.bundle))}. Labels: {html.escape(counts) or 'none'}.</p>
<div class="bar"><input id="q" placeholder="filter: name, label, note" size="30">
<select id="label"></select><label><input type="checkbox" id="low"> only tracks to check
</label><span id="count"></span></div>
<table><thead><tr><th data-k="path">track</th><th data-k="label">label</th>
<th data-k="confidence">confidence</th><th>top 3</th><th>notes</th></tr></thead>
<tbody id="body"></tbody></table><div id="more"></div>
{_confusion(report.truth, report.classes)}
<script type="application/json" id="data">{payload}</script>
<script>{_SCRIPT}</script></body></html>
"""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
