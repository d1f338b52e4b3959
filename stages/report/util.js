/* Thoughtmill inspector, shared helpers: the embedded data, DOM building, number formats and the
   confidence colour scale. The modules after this one (overview, tracelist, traceview, app) are
   inlined into the same script, so these top-level names are theirs too. */
"use strict";
const DATA = JSON.parse(document.getElementById("tm-data").textContent);
const META = DATA.meta, OV = DATA.overview, TRACES = DATA.traces, PAIRS = DATA.pairs;
const BY_ID = new Map(TRACES.map((t) => [t.id, t]));
const $ = (s) => document.querySelector(s);
const num = (v) => (v == null ? "–" : Number(v).toLocaleString("en-US", { maximumFractionDigits: 3 }));
const pct = (v) => (v == null ? "–" : (100 * v).toFixed(1) + "%");
const ratio = (a, n) => (n ? a / n : null);

function h(tag, attrs, ...kids) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") n.className = v;
    else if (k === "style") n.style.cssText = v;
    else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else if (v != null && v !== false) n.setAttribute(k, v);
  }
  for (const c of kids.flat()) if (c != null && c !== false) n.append(c instanceof Node ? c : String(c));
  return n;
}
const chip = (s, cls, title) => h("span", { class: "chip " + (cls || ""), title }, s);
function table(el, head, rows) {
  el.replaceChildren(h("tr", {}, head.map((c) => h("th", {}, c))));
  for (const r of rows) el.append(h("tr", {}, r.map((c) => h("td", { class: typeof c === "number" ? "num" : "" }, typeof c === "number" ? num(c) : c))));
  if (!rows.length) el.append(h("tr", {}, h("td", { colspan: head.length, class: "muted" }, "none")));
}

/* Confidence -> colour, on -log10(1 - c) over [0, 3] (c = 0 … 0.999) so 0.9, 0.99 and 0.999 stay
   apart. One blue-violet hue with lightness rising with confidence: readable without telling red
   from green, and clear of the verdict chips' red and green. Low confidence is the darkest. */
function confColor(c) {
  if (c == null) return "hsl(0,0%,91%)";
  const s = Math.min(3, Math.max(0, -Math.log10(Math.max(1e-9, 1 - c)))) / 3;
  return `hsl(${Math.round(275 - 65 * s)},${Math.round(60 - 35 * s)}%,${Math.round(68 + 29 * s)}%)`;
}
const confidenceOf = (c) => (c == null ? "n/a" : c >= 0.9995 ? c.toFixed(5) : c.toFixed(3));
