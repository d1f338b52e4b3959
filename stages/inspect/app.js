/* Thoughtmill inspector: overview and trace view over the data embedded in #tm-data.
   Vanilla JS only; routes are URL hashes (#overview, #traces, #trace=<id>) so views can be linked. */
"use strict";
(() => {
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

  /* Confidence -> colour: hue from red to green on -log10(1 - c) over [0, 3], i.e. c = 0 … 0.999,
     so the differences between confident steps (0.9, 0.99, 0.999) stay visible. */
  function confColor(c) {
    if (c == null) return "hsl(0,0%,90%)";
    const s = Math.min(3, Math.max(0, -Math.log10(Math.max(1e-9, 1 - c))));
    return `hsl(${Math.round((120 * s) / 3)},70%,84%)`;
  }

  function header() {
    const m = META;
    $("#meta").textContent = `${m.kind} folder ${m.source} · generated ${m.generated}` + (m.missing.length ? ` · not available in this folder: ${m.missing.join(", ")}` : "");
    $("#statement").textContent = `${m.statement}. ${m.budget}.`;
  }

  function overview() {
    const T = OV.totals, th = OV.thinking;
    const cards = [
      ["traces", num(T.traces)], ["problems", num(T.problems)], ["steps", num(T.steps)],
      ["final-answer accuracy", pct(ratio(T.final_correct, T.traces))], ["thinking accuracy", pct(ratio(T.thinking_correct, T.traces))],
      ["thinking-answer agreement", pct(th.rate)], ...Object.entries(T.consensus).map(([k, v]) => [`consensus ${k}`, num(v)]),
      ...Object.entries(OV.pairs).map(([k, v]) => [`${k} pairs`, num(v)]),
    ];
    $("#cards").replaceChildren(...cards.map(([k, v]) => h("div", { class: "card" }, h("b", {}, v), k)));
    const rows = Object.entries(OV.rows).map(([k, v]) => {
      const s = OV.stages.find((x) => x.stage === k || (k === "labeled" && x.stage === "label") || (k === "traces" && (x.stage === "generate" || x.stage === "import")));
      return [k, v, s ? s.status || "" : "", s && s.seconds != null ? s.seconds : "", s && s.tokens != null ? s.tokens : ""];
    });
    table($("#stage-table"), ["folder / config", "rows", "stage status", "seconds", "tokens"], rows);
    // run.json's funnel (the card's too): each step with the drops that led to it, each drop once
    const F = OV.funnel || {}, dropped = (s) => s.drops.filter((d) => d.n).map((d) => `${d.reason}: ${num(d.n)} ${d.unit}`).join(", ") || "–";
    const steps = [...(F.traces || []).map((s) => [s.step, s.stage, s.n, s.unit, dropped(s)]),
      ...Object.entries(F.configs || {}).map(([k, n]) => [`config ${k}`, "export", n, "rows", "–"]),
      ...(F.pairs || []).map((s) => [`pairs: ${s.step}`, s.stage, s.n, s.unit, dropped(s)])];
    table($("#funnel-table"), ["step", "stage", "count", "unit", "dropped on the way"], steps);
    table($("#drop-table"), ["stage", "reason", "dropped", "unit"], (F.drops || []).map((d) => [d.stage, d.reason, d.n, d.unit]));
    table($("#filter-table"), ["filter", "traces (all)", "embedded", "meaning"], Object.entries(META.filters).map(([k, d]) => [k, T.filters[k], TRACES.filter((t) => t.flags.includes(k)).length, d]));
    charts();
  }

  function figure(id, title, note) {
    const f = h("figure", { id: "chart-" + id }, h("figcaption", {}, title));
    $("#charts").append(f);
    return [f, (s) => f.append(h("p", { class: "note" }, s || note))];
  }

  function charts() {
    let [f, note] = figure("calibration", "Step confidence calibration");
    Charts.points(f, OV.calibration.map((b) => ({ x: b.conf, y: b.correct, n: b.n, tip: `confidence ${b.lo.toFixed(1)}–${b.hi.toFixed(1)}: ${pct(b.correct)} correct of ${num(b.n)} steps` })),
      { xd: [0, 1], yd: [0, 1], diagonal: true, xlabel: "step confidence exp(mean token logprob)", ylabel: "fraction correct (consensus)", empty: "no steps with confidence and consensus label" });
    note("Reliability diagram: steps in 10 confidence bins; the dashed line is perfect calibration; dot size ∝ steps.");

    [f, note] = figure("first-error", "Position of the first wrong step (consensus)");
    const fe = OV.first_error;
    Charts.bars(f, fe.hist.map((b) => ({ label: b.pos < 0 ? "none" : b.pos >= fe.cap ? `${fe.cap}+` : String(b.pos), value: b.n, color: b.pos < 0 ? "#7fb38f" : "#c0392b" })),
      { xlabel: "first wrong step index", ylabel: "traces", empty: "no consensus first errors" });
    note(`${num(fe.no_consensus)} traces have no consensus first error (labelers disagree or too few answered).`);

    [f, note] = figure("length", "Thinking length vs final-answer accuracy");
    const la = OV.length_accuracy;
    Charts.points(f, la.map((b) => ({ x: (b.lo + b.hi) / 2, y: b.accuracy, n: b.n, tip: `${num(b.lo)}–${num(b.hi)} tokens: ${pct(b.accuracy)} of ${num(b.n)}` })),
      { xd: la.length ? [la[0].lo, la[la.length - 1].hi] : [0, 1], yd: [0, 1], color: "#1e8449", xlabel: "thinking tokens (bin centre)", ylabel: "fraction final correct", empty: "no traces" });
    note("Equal-width bins of thinking tokens; dot size ∝ traces.");

    [f, note] = figure("labelers", "Agreement between labelers (pairwise)");
    Charts.bars(f, OV.labelers.map((p) => ({ label: `${p.a}–${p.b}`, exact: p.exact, has_error: p.has_error, tip: `n=${num(p.n)}` })),
      { ymax: 1, ylabel: "agreement rate", xlabel: "labeler pair (traces both answered)", series: [{ key: "exact", name: "same first error", color: "#2f5fb3" }, { key: "has_error", name: "same error / no error", color: "#9bb7e0" }] });
    note(OV.labelers.map((p) => `${p.a}–${p.b}: n=${num(p.n)}`).join(" · "));

    [f, note] = figure("thinking", "Thinking-answer agreement");
    const th = OV.thinking;
    Charts.bars(f, [{ label: "agrees", value: th.agrees, color: "#1e8449" }, { label: "disagrees", value: th.disagrees, color: "#c0392b" }, { label: "unknown", value: th.unknown, color: "#999" }],
      { xlabel: "thinking's answer vs final answer", ylabel: "traces" });
    note(`Agreement rate ${pct(th.rate)} of decided traces; ${pct(th.rate_correct)} among correct and ${pct(th.rate_wrong)} among wrong final answers.`);
  }

  /* ---- evaluation: models side by side ---- */
  const interval = (v) => (v == null || v[0] == null ? "–" : `${num(v[0])} [${num(v[1])}, ${num(v[2])}]`);
  function evaluation() {
    const E = DATA.evaluation;
    if (!E) return;
    $("#nav-evaluation").hidden = false;
    const models = Object.keys(E.models);
    const differs = (o) => (o == null ? "" : o ? "intervals overlap" : "beyond the intervals");
    table($("#eval-table"), ["section", "figure", ...models, ...(models.length === 2 ? ["difference"] : [])],
      E.rows.map((r) => [r.section, r.metric, ...models.map((m) => interval(r.values[m])), ...(models.length === 2 ? [differs(r.overlap)] : [])]));
    const blocks = models.map((m) => {
      const s = E.models[m], c = s.table_counts, box = h("div", {}, h("h3", {}, m),
        h("p", { class: "muted" }, `${num(s.samples)} samples over ${num(s.problems)} problems; first errors from ${s.first_error_source}`));
      const t2 = h("table", {});
      table(t2, ["", "answer right", "answer wrong"], [["thinking right", c.both_right, c.knows_but_says_otherwise], ["thinking wrong", c.right_answer_wrong_thinking, c.both_wrong]]);
      box.append(t2);
      for (const [label, bins] of [["thinking tokens", s.accuracy_by_length], ["deep-thinking ratio", s.accuracy_by_dtr]]) {
        if (!bins.length) continue;
        const tb = h("table", {});
        table(tb, [label, "samples", "accuracy"], bins.map((b) => [`${num(b.from)}–${num(b.to)}`, b.samples, pct(b.accuracy)]));
        box.append(h("h3", {}, `accuracy by ${label}`), tb);
      }
      return box;
    });
    $("#eval-models").replaceChildren(...blocks);
  }

  /* ---- trace list ---- */
  const filterSel = $("#filter"), search = $("#search"), list = $("#trace-list");
  let current = null;
  function setupList() {
    filterSel.append(h("option", { value: "" }, `all embedded (${num(TRACES.length)})`));
    for (const [k, d] of Object.entries(META.filters)) {
      filterSel.append(h("option", { value: k, title: d }, `${k} (${num(TRACES.filter((t) => t.flags.includes(k)).length)} embedded of ${num(OV.totals.filters[k])})`));
    }
    filterSel.addEventListener("change", fillList);
    search.addEventListener("input", fillList);
  }
  function fillList() {
    const f = filterSel.value, q = search.value.trim().toLowerCase();
    const rows = TRACES.filter((t) => (!f || t.flags.includes(f)) && (!q || t.pid.toLowerCase().startsWith(q) || t.id.toLowerCase().startsWith(q)));
    const shown = rows.slice(0, 3000);
    list.replaceChildren(...shown.map((t) => h("li", { "data-id": t.id, class: t === current ? "active" : "", onclick: () => (location.hash = "trace=" + t.id) },
      h("code", {}, t.pid), ` #${t.sample} `, chip(t.final_correct ? "✓" : "✗", t.final_correct ? "good" : "bad"), ...t.flags.map((k) => chip(k, "flag")))));
    $("#list-count").textContent = `${num(rows.length)} matching of ${num(TRACES.length)} embedded` + (rows.length > shown.length ? ` (first ${shown.length} listed)` : "") +
      (q && !rows.length ? ` — no embedded trace has this id; the page embeds ${num(META.shown)} of ${num(META.total)} traces (raise --max-traces)` : "");
  }

  /* ---- trace view ---- */
  const yes = (v, t, f) => (v == null ? chip("n/a") : v ? chip(t || "✓", "good") : chip(f || "✗", "bad"));
  const fe = (v) => (v == null ? "n/a" : v < 0 ? "none" : `step ${v}`);
  function stepLabels(s) {
    const [, , sym, mcv, mcl, jl, lab, low] = s;
    return [chip(`sym ${sym ?? "n/a"}`, sym === "wrong" ? "bad" : sym === "correct" ? "good" : ""),
      mcl == null && mcv == null ? chip("mc n/a") : chip(`mc ${mcv == null ? "" : mcv.toFixed(2) + " "}${mcl == null ? "" : mcl ? "✓" : "✗"}`, mcl === false ? "bad" : mcl ? "good" : ""),
      judgeChip(jl), lab == null ? chip("consensus –", "", "no consensus label") : chip(`consensus ${lab ? "✓" : "✗"}`, lab ? "good" : "bad"),
      low ? chip(`${low} low-conf tokens`) : null];
  }
  const judgeChip = (v) => (v == null ? chip("judge n/a") : chip(`judge ${v ? "✓" : "✗"}`, v ? "good" : "bad"));
  function legend() {
    return h("div", { class: "legend" }, "step colour = confidence exp(mean token logprob):",
      ...[0.5, 0.9, 0.99, 0.999].map((c) => [h("span", { class: "sw", style: `background:${confColor(c)}` }), String(c)]), h("span", { class: "sw", style: `background:${confColor(null)}` }), "none");
  }
  function pairRows(t) {
    return t.pairs.map((i) => PAIRS[i]).map((p) => {
      const role = p.ctrace === t.id ? "chosen" : p.rtrace === t.id ? "rejected" : "prefix source";
      const other = p.ctrace === t.id ? p.rtrace : p.rtrace === t.id ? p.ctrace : null;
      const link = other ? (BY_ID.has(other) ? h("a", { class: "tr", href: "#trace=" + other }, other.slice(0, 10)) : h("span", { title: "not embedded" }, other.slice(0, 10))) : "";
      return h("tr", {}, h("td", {}, p.kind), h("td", {}, p.source), h("td", {}, role), h("td", { class: "num" }, num(p.margin)), h("td", {}, p.step ?? ""), h("td", {}, link), h("td", {}, p.chosen), h("td", {}, p.rejected));
    });
  }
  function showTrace(t) {
    current = t;
    for (const li of list.children) li.classList.toggle("active", li.dataset.id === t.id);
    const misaligned = t.agrees === false;
    const steps = t.steps.map((s, i) => {
      const marks = Object.entries(t.labelers).filter(([, v]) => v === i).map(([k]) => k);
      return h("li", { class: "step" + (t.first_error === i ? " first-error" : ""), "data-conf": s[1] ?? "", style: `background-color:${confColor(s[1])}` },
        h("div", { class: "idx" }, `step ${i}`, h("br"), s[1] == null ? "conf n/a" : `conf ${s[1].toFixed(3)}`,
          t.first_error === i ? h("div", { class: "marker" }, "⚑ first error") : null),
        h("div", { class: "txt" }, s[0]), h("div", { class: "labels" }, stepLabels(s), marks.length ? h("div", { class: "marker" }, `first error per ${marks.join(", ")}`) : null));
    });
    const fr = t.frontier;
    $("#trace").replaceChildren(...[
      h("h2", {}, `Problem ${t.pid} · sample ${t.sample}`), h("p", { class: "muted" }, `trace ${t.id} · ${t.model} · finish ${t.finish} · ${num(t.tokens)} thinking tokens` + (t.overthinking != null ? ` · overthinking ×${num(t.overthinking)}` : "")),
      h("div", {}, t.flags.length ? t.flags.map((k) => chip(k, "flag", META.filters[k])) : chip("no filter matches")),
      h("div", { class: "text" }, t.problem),
      h("div", { class: "answers" }, h("div", {}, "gold answer", h("b", {}, t.gold ?? "–")),
        h("div", { class: misaligned ? "misaligned" : "" }, "thinking's concluded answer ", yes(t.thinking_correct), h("b", {}, t.thinking_answer ?? "–")),
        h("div", { class: misaligned ? "misaligned" : "" }, "final answer ", yes(t.final_correct), h("b", {}, t.final ?? "–"), `confidence ${t.answer_conf == null ? "n/a" : num(t.answer_conf)} · `, t.agrees == null ? "agreement unknown" : t.agrees ? "agrees with thinking" : h("span", { class: "marker" }, "MISALIGNED with thinking"))),
      h("h3", {}, `Labels · consensus ${t.consensus} · first error ${fe(t.first_error)}`),
      h("table", {}, h("tr", {}, h("th", {}, "labeler"), h("th", {}, "first error")), ...Object.entries(t.labelers).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, fe(v)))), h("tr", {}, h("th", {}, "consensus"), h("th", {}, fe(t.first_error)))),
      h("h3", {}, `Steps (${t.n_steps})`), legend(), h("ol", { class: "steps" }, steps),
      t.cut ? h("p", { class: "muted" }, `${num(t.cut)} chars of step text not embedded (size budget).`) : null,
      h("h3", {}, "Answer text"), h("div", { class: "text" }, (t.answer_text ?? "").trim()),
      fr ? h("p", {}, "Frontier: ", yes(fr.keep, "kept", "dropped"), fr.drop_reason ? ` ${fr.drop_reason}` : "", ` · student pass rate ${num(fr.pass_rate)} · IFD ${num(fr.ifd)}`) : null,
      h("h3", {}, `Pairs (${t.n_pairs})`), t.n_pairs > t.pairs.length ? h("p", { class: "muted" }, `first ${t.pairs.length} listed (size budget)`) : null,
      t.pairs.length ? h("table", { class: "pairs" }, h("tr", {}, ["kind", "source", "role", "margin", "step", "other trace", "chosen", "rejected"].map((c) => h("th", {}, c))), pairRows(t)) : h("p", { class: "muted" }, "This trace takes part in no pair."),
      h("details", {}, h("summary", {}, "labeler provenance"), h("pre", {}, t.provenance ?? "")),
    ].filter((n) => n != null));
  }

  /* ---- routing ---- */
  function route() {
    const hash = decodeURIComponent(location.hash.slice(1));
    const tab = hash.startsWith("trace") ? "traces" : hash === "evaluation" && DATA.evaluation ? "evaluation" : "overview";
    $("#tab-overview").hidden = tab !== "overview";
    $("#tab-traces").hidden = tab !== "traces";
    $("#tab-evaluation").hidden = tab !== "evaluation";
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.tab === tab);
    if (hash.startsWith("trace=")) {
      const t = BY_ID.get(hash.slice(6));
      if (t) showTrace(t);
      else $("#trace").replaceChildren(h("p", { class: "muted" }, `Trace ${hash.slice(6)} is not embedded in this page.`));
    } else if (tab === "traces" && !current && TRACES.length) showTrace(TRACES[0]);
  }

  header();
  overview();
  evaluation();
  setupList();
  fillList();
  window.addEventListener("hashchange", route);
  route();
})();
