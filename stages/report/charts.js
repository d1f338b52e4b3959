/* Tiny inline-SVG charts for the inspector: no library, no network. Each function draws into
   a container element and returns the <svg>; every data mark has class "mark" (the browser
   test counts them). Empty data draws the axes and a "no data" note, never throws. */
"use strict";
const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 460, H = 270, M = { l: 58, r: 12, t: 12, b: 42 };

  function node(tag, attrs, parent) {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
    if (parent) parent.appendChild(n);
    return n;
  }
  function text(parent, x, y, s, attrs) {
    const t = node("text", Object.assign({ x, y }, attrs || {}), parent);
    t.textContent = s;
    return t;
  }
  function scale(d0, d1, r0, r1) {
    const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
    return (v) => r0 + (v - d0) * k;
  }
  function ticks(d0, d1, n) {
    if (d1 <= d0) return [d0];
    const raw = (d1 - d0) / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const out = [];
    for (let v = Math.ceil(d0 / step) * step; v <= d1 + 1e-9; v += step) out.push(+v.toFixed(10));
    return out;
  }
  const fmt = (v) => {
    const a = Math.abs(v);
    if (a >= 1e6) return +(v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return +(v / 1e3).toFixed(1) + "k";
    return a >= 1000 ? v.toLocaleString("en-US", { maximumFractionDigits: 0 }) : String(+v.toFixed(2));
  };

  /* Frame with axes: x and y domains, axis titles; returns {svg, x, y, g}. */
  function frame(el, xd, yd, xlabel, ylabel, xTicks) {
    const svg = node("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", style: `max-width:${1.2 * W}px` }, el);
    const x = scale(xd[0], xd[1], M.l, W - M.r), y = scale(yd[0], yd[1], H - M.b, M.t);
    const axis = node("g", { class: "axis" }, svg);
    for (const v of ticks(yd[0], yd[1], 5)) {
      node("line", { x1: M.l, x2: W - M.r, y1: y(v), y2: y(v), class: "grid" }, axis);
      text(axis, M.l - 4, y(v) + 4, fmt(v), { "text-anchor": "end" });
    }
    for (const [v, label] of xTicks || ticks(xd[0], xd[1], 6).map((v) => [v, fmt(v)])) {
      node("line", { x1: x(v), x2: x(v), y1: H - M.b, y2: H - M.b + 4 }, axis);
      text(axis, x(v), H - M.b + 15, label, { "text-anchor": "middle" });
    }
    node("line", { x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b }, axis);
    node("line", { x1: M.l, x2: M.l, y1: M.t, y2: H - M.b }, axis);
    text(svg, (M.l + W - M.r) / 2, H - 6, xlabel, { "text-anchor": "middle" });
    text(svg, 12, (M.t + H - M.b) / 2, ylabel, { "text-anchor": "middle", transform: `rotate(-90 12 ${(M.t + H - M.b) / 2})` });
    return { svg, x, y };
  }
  function empty(svg, note) {
    text(svg, W / 2, H / 2, note || "no data", { "text-anchor": "middle", class: "empty" });
  }
  function tip(n, s) {
    node("title", {}, n).textContent = s;
  }

  /* A mark that opens its traces when clicked (`o.onclick(item)`), with a tooltip. */
  function clickable(n, item, o, tipText) {
    tip(n, tipText + (o.onclick ? " — click to list these traces" : ""));
    if (o.onclick) {
      n.setAttribute("tabindex", "0");
      n.style.cursor = "pointer";
      n.addEventListener("click", () => o.onclick(item));
    }
  }

  /* Points, radius by count, optional 95% interval bars (p.lo, p.hi) and a joining line
     (o.line, off for bins that stand alone); `o.xmap` maps x to the axis (e.g. -log10(1 - c)),
     `o.xticks` are [value, label] in data units; `o.diagonal`: x values to draw y = x through. */
  function points(el, pts, o) {
    const X = o.xmap || ((v) => v);
    const xt = o.xticks ? o.xticks.map(([v, l]) => [X(v), l]) : null;
    const f = frame(el, o.xd.map(X), o.yd, o.xlabel, o.ylabel, xt);
    if (o.diagonal) {
      const xs = o.diagonal === true ? [0, 1] : o.diagonal;
      node("path", { d: xs.map((v, i) => `${i ? "L" : "M"}${f.x(X(v)).toFixed(1)},${f.y(v).toFixed(1)}`).join(""), fill: "none", stroke: "#999", "stroke-dasharray": "4 3" }, f.svg);
    }
    if (!pts.length) return empty(f.svg, o.empty), f.svg;
    const color = o.color || "#2f5fb3";
    if (o.line !== false) {
      const d = pts.map((p, i) => `${i ? "L" : "M"}${f.x(X(p.x)).toFixed(1)},${f.y(p.y).toFixed(1)}`).join("");
      node("path", { d, fill: "none", stroke: color, "stroke-width": 1.5 }, f.svg);
    }
    const max = Math.max(...pts.map((p) => p.n));
    for (const p of pts) {
      const cx = f.x(X(p.x));
      if (p.lo != null) node("line", { x1: cx, x2: cx, y1: f.y(p.lo), y2: f.y(p.hi), stroke: color, "stroke-width": 1.5, class: "ci" }, f.svg);
      const c = node("circle", { cx, cy: f.y(p.y), r: 3 + 5 * Math.sqrt(p.n / max), fill: color, "fill-opacity": 0.75, class: "mark" }, f.svg);
      clickable(c, p, o, p.tip || `${fmt(p.x)}: ${fmt(p.y)} (n=${p.n})`);
      if (o.counts) text(f.svg, cx, f.y(o.yd[0]) - 4, fmt(p.n), { "text-anchor": "middle", class: "count" });  // along the axis: clear of the marks
    }
    return f.svg;
  }

  /* Bars: [{label, value, color?, tip?}]; several series per group when `series` is given. */
  function bars(el, items, o) {
    const series = o.series || [{ key: "value", color: o.color || "#2f5fb3" }];
    const max = o.ymax != null ? o.ymax : Math.max(1, ...items.flatMap((it) => series.map((s) => it[s.key] || 0)));
    const n = Math.max(1, items.length), band = (W - M.l - M.r) / n;
    const xTicks = items.length <= 24 ? items.map((it, i) => [i + 0.5, it.label]) : items.filter((_, i) => i % Math.ceil(n / 12) === 0).map((it) => [items.indexOf(it) + 0.5, it.label]);
    const min = Math.min(0, ...items.flatMap((it) => series.map((s) => it[s.key] || 0)));  // kappa can be < 0
    const f = frame(el, [0, n], [min, max], o.xlabel, o.ylabel, xTicks);
    if (!items.length) return empty(f.svg, o.empty), f.svg;
    const bw = (band * 0.8) / series.length;
    items.forEach((it, i) => series.forEach((s, j) => {
      const v = it[s.key];
      if (v == null) return;
      const x0 = M.l + i * band + band * 0.1 + j * bw;
      const r = node("rect", { x: x0, y: f.y(Math.max(0, v)), width: Math.max(1, bw - 1), height: Math.abs(f.y(0) - f.y(v)), fill: it.color || s.color, class: "mark" }, f.svg);
      clickable(r, it, o, `${it.label}${s.name ? " " + s.name : ""}: ${fmt(v)}${it.tip ? " — " + it.tip : ""}`);
    }));
    if (o.series && o.series.length > 1) {
      o.series.forEach((s, j) => {
        node("rect", { x: W - M.r - 150, y: M.t + j * 14, width: 10, height: 10, fill: s.color }, f.svg);
        text(f.svg, W - M.r - 136, M.t + 9 + j * 14, s.name);
      });
    }
    return f.svg;
  }

  return { points, bars, node };
})();
