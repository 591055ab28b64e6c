"""The answering page: one card per suggested track with its audio, the timeline of its
class scores (click to jump there), the model's guess, one button per class, "none of
these" and "skip"; keys 1–9 for the classes, n for none, s for skip, ↑/↓ to move.
Everything it shows comes from the server's ``data`` route; each click is one POST."""

from __future__ import annotations

_STYLE = """body{font:15px system-ui,sans-serif;margin:1.2em auto;max-width:62em;color:#222}
h1{font-size:1.35em;margin:0}.lead{color:#444;margin:.3em 0 1em}
.card{border:1px solid #ccc;border-radius:.5em;padding:.7em 1em;margin:.7em 0}
.card.cur{border:2px solid #2a62c9;box-shadow:0 0 .4em #2a62c955}.card.done{opacity:.65}
.path{font-weight:600;word-break:break-all}.meta{color:#555;margin:.2em 0 .4em}
button{font:inherit;margin:.15em;padding:.25em .7em;border-radius:.3em;border:1px solid #999;
background:#f6f6f6;cursor:pointer}button.on{background:#2a62c9;color:#fff;border-color:#2a62c9}
button.none{border-style:dashed}kbd{font-size:.8em;color:#777;margin-left:.3em}
svg{display:block;margin:.3em 0;cursor:pointer}audio{width:100%}.next{background:#eef4e8;
padding:.6em 1em;border-radius:.4em}.err{color:#a33}"""

_SCRIPT = r"""
const base = location.pathname;
let D, cur = 0;
const esc = s => String(s).replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
const color = i => `hsl(${(i * 360 / D.classes.length) | 0},60%,45%)`;
function timeline(t) {
  if (!t.timeline.length) return '';
  const w = 900, h = 46, bw = w / t.timeline.length;
  return `<svg width="${w}" height="${h}" data-i="${t.i}">` + t.timeline.map(([s, p], k) => {
    let y = h;
    return D.classes.map((c, j) => { const hh = p[c] * h; y -= hh;
      return `<rect x="${k * bw}" y="${y}" width="${bw}" height="${hh}" fill="${color(j)}"
        data-t="${s}"><title>${esc(c)} ${p[c].toFixed(2)} at ${s.toFixed(0)} s</title></rect>`; }).join('');
  }).join('') + '</svg>';
}
function card(t) {
  const guess = t.error ? `<span class="err">${esc(t.error)}</span>` : t.confidence == null ? '' :
    `model: <b>${esc(t.guess)}</b> ${t.confidence.toFixed(2)}` + (t.known == null ? '' : ` · known ${t.known.toFixed(2)}`);
  const buttons = D.classes.map((c, j) => `<button data-l="${esc(c)}" class="${t.label === c ? 'on' : ''}"
    style="border-left:.5em solid ${color(j)}">${esc(c)}${j < 9 ? `<kbd>${j + 1}</kbd>` : ''}</button>`).join('') +
    `<button class="none ${t.label === D.none ? 'on' : ''}" data-l="${D.none}">none of these<kbd>n</kbd></button>` +
    `<button data-l="">skip<kbd>s</kbd></button>`;
  return `<div class="card ${t.i === cur ? 'cur' : ''} ${t.label ? 'done' : ''}" id="c${t.i}" data-i="${t.i}">
    <div class="path">${esc(t.path)}</div><div class="meta">${guess}${t.label ? ` · your answer: <b>${esc(t.label)}</b>` : ''}</div>
    <audio controls preload="none" src="${base}audio/${t.i}"></audio>${timeline(t)}<div>${buttons}</div></div>`;
}
function draw() {
  const n = D.tracks.filter(t => t.label).length;
  document.getElementById('head').innerHTML = `${n} of ${D.tracks.length} answered, written to ${esc(D.file)}`;
  document.getElementById('next').style.display = n ? '' : 'none';
  document.getElementById('cards').innerHTML = D.tracks.map(card).join('');
}
async function answer(i, label) {
  const r = await fetch(base + 'answer', {method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({i, label})});
  const out = await r.json();
  if (!r.ok) { alert(out.error); return; }
  D.tracks[i].label = label;
  const next = D.tracks.findIndex((t, k) => k > i && !t.label);
  cur = next >= 0 ? next : i;
  draw();
  document.getElementById('c' + cur).scrollIntoView({block: 'center'});
}
document.addEventListener('click', e => {
  const b = e.target.closest('button'), c = e.target.closest('.card');
  if (c) cur = +c.dataset.i;
  if (b && c) return answer(+c.dataset.i, b.dataset.l);
  const rect = e.target.closest('rect');
  if (rect && c) { const a = c.querySelector('audio'); a.currentTime = +rect.dataset.t; a.play(); }
  if (c) draw();
});
document.addEventListener('keydown', e => {
  if (!D || e.target.tagName === 'INPUT') return;
  const k = e.key;
  if (k >= '1' && k <= '9' && +k <= D.classes.length) answer(cur, D.classes[+k - 1]);
  else if (k === 'n') answer(cur, D.none);
  else if (k === 's') answer(cur, '');
  else if (k === 'ArrowDown' || k === 'ArrowUp') {
    cur = Math.max(0, Math.min(D.tracks.length - 1, cur + (k === 'ArrowDown' ? 1 : -1)));
    draw(); document.getElementById('c' + cur).scrollIntoView({block: 'center'}); e.preventDefault();
  } else if (k === ' ') { const a = document.querySelector(`#c${cur} audio`); a.paused ? a.play() : a.pause(); e.preventDefault(); }
});
fetch(base + 'data').then(r => r.json()).then(d => {
  D = d; cur = Math.max(0, D.tracks.findIndex(t => !t.label));
  document.getElementById('nexttext').textContent = D.next; draw(); });
"""


def page_html() -> str:
    """The page (no data in it: it asks the server's ``data`` route)."""
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>slapp: teach it your music</title><style>{_STYLE}</style></head><body>
<h1>Teach it your music</h1>
<p class="lead">Listen, then pick the genre of each track — or <b>none of these</b> when it
is none of your classes. The bar under a track is the model's score for each class along
it: click it to hear that moment. Every answer is saved at once. <span id="head"></span></p>
<p class="next" id="next" style="display:none">Next, in the terminal: stop this page
(Ctrl-C) and run <span id="nexttext"></span>.</p>
<div id="cards"></div><script>{_SCRIPT}</script></body></html>"""
