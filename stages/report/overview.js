/* The overview tab: counts, the run's funnel, and charts over all traces. Every chart mark and
   2x2 cell opens the embedded traces behind it in the trace table (`List.select`). */
const Overview = (() => {
  function header() {
    const m = META;
    $("#meta").textContent = `${m.kind} folder ${m.source} · generated ${m.generated}` + (m.missing.length ? ` · not available in this folder: ${m.missing.join(", ")}` : "");
    $("#statement").textContent = `${m.statement}. ${m.budget}.`;
  }

  function render() {
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

  function figure(id, title) {
    const f = h("figure", { id: "chart-" + id }, h("figcaption", {}, title));
    $("#charts").append(f);
    return [f, (s) => f.append(h("p", { class: "note" }, s))];
  }
  const open = (label, test) => () => List.select(label, test);

  /* Steps up to the consensus first error (as the calibration counts them) with confidence in [lo, hi). */
  const inBin = (b, last) => (t) => t.first_error != null &&
    t.steps.some((s, i) => (t.first_error < 0 || i <= t.first_error) && s[1] != null && s[1] >= b.lo && (s[1] < b.hi || (last && s[1] <= b.hi)));
  const logit = (c) => Math.min(4.4, -Math.log10(Math.max(4e-5, 1 - c)));

  function charts() {
    const C = OV.calibration;
    let [f, note] = figure("calibration", "Step confidence calibration (up to the first error)");
    const edges = C.edges, lastHi = edges[edges.length - 1];
    Charts.points(f, C.bins.map((b) => ({ x: b.conf, y: b.correct, n: b.n, lo: b.ci[0], hi: b.ci[1], b,
      tip: `confidence ${b.lo}–${b.hi}: ${num(b.k)} of ${num(b.n)} steps correct (${pct(b.correct)}, 95% CI ${pct(b.ci[0])}–${pct(b.ci[1])}), mean confidence ${confidenceOf(b.conf)}` })),
    { xd: [0, 0.99996], yd: [0, 1], xmap: logit, xticks: edges.slice(0, -1).map((e) => [e, String(e)]), diagonal: Array.from({ length: 81 }, (_, i) => 1 - Math.pow(10, -i / 20)),
      line: false, counts: true, xlabel: "step confidence exp(mean token logprob), on −log10(1 − c)", ylabel: "fraction correct (consensus)",
      empty: "no steps with confidence before a consensus first error", onclick: (p) => List.select(`calibration bin ${p.b.lo}–${p.b.hi}`, inBin(p.b, p.b.hi === lastHi)) });
    note(`${num(C.steps)} steps of traces with a consensus first error, up to and including it; bins at ${edges.join(" / ")}; bars are 95% Wilson intervals, numbers along the axis are steps per bin; ECE ${C.ece == null ? "–" : C.ece.toFixed(3)}. The dashed curve is perfect calibration.`);

    [f, note] = figure("first-error", "Position of the first wrong step (consensus)");
    const fe = OV.first_error;
    Charts.bars(f, fe.hist.map((b) => ({ label: b.pos < 0 ? "none" : b.pos >= fe.cap ? `${fe.cap}+` : String(b.pos), value: b.n, color: b.pos < 0 ? "#7fb38f" : "#c0392b", pos: b.pos })),
      { xlabel: "first wrong step index", ylabel: "traces", empty: "no consensus first errors",
        onclick: (b) => List.select(`first error ${b.label}`, (t) => t.first_error != null && (b.pos >= fe.cap ? t.first_error >= fe.cap : t.first_error === b.pos)) });
    note(`${num(fe.no_consensus)} traces have no consensus first error (labelers disagree or too few answered).`);

    [f, note] = figure("length", "Thinking length vs final-answer accuracy");
    const la = OV.length_accuracy;
    Charts.points(f, la.map((b, i) => ({ x: (b.lo + b.hi) / 2, y: b.accuracy, n: b.n, b, last: i === la.length - 1, tip: `${num(b.lo)}–${num(b.hi)} tokens: ${pct(b.accuracy)} of ${num(b.n)}` })),
      { xd: la.length ? [la[0].lo, la[la.length - 1].hi] : [0, 1], yd: [0, 1], color: "#1e8449", xlabel: "thinking tokens (bin centre)", ylabel: "fraction final correct", empty: "no traces",
        onclick: (p) => List.select(`thinking tokens ${num(p.b.lo)}–${num(p.b.hi)}`, (t) => t.tokens != null && t.tokens >= p.b.lo && (t.tokens < p.b.hi || (p.last && t.tokens <= p.b.hi))) });
    note("Equal-width bins of thinking tokens; dot size ∝ traces.");

    labelers();
    thinking();
  }

  const disagree = (a, b) => (t) => t.labelers[a] != null && t.labelers[b] != null && (t.labelers[a] >= 0) !== (t.labelers[b] >= 0);
  function labelers() {
    const L = OV.labelers;
    const [f, note] = figure("labelers", "Labeler agreement: Cohen's κ on “has an error”");
    Charts.bars(f, L.pairs.map((p) => ({ label: `${p.a}–${p.b}`, value: p.kappa, p, tip: `κ ${p.kappa == null ? "–" : p.kappa.toFixed(3)} over ${num(p.n)} traces both answered; ${num(p.yn + p.ny)} disagree` })),
      { ymax: 1, ylabel: "Cohen's κ", xlabel: "labeler pair (traces both answered)", color: "#2f5fb3",
        onclick: (it) => List.select(`${it.p.a} and ${it.p.b} disagree on has-error`, disagree(it.p.a, it.p.b)) });
    const t1 = h("table", { class: "small", id: "kappa-table" });
    table(t1, ["pair", "both answered", "coverage", "both: error", "only first", "only second", "both: none", "κ", "same first error"],
      L.pairs.map((p) => [`${p.a}–${p.b}`, p.n, pct(p.coverage), p.yy, p.yn, p.ny, p.nn, p.kappa == null ? "–" : p.kappa.toFixed(3), `${num(p.exact)} (${pct(p.exact_rate)})`]));
    const t2 = h("table", { class: "small", id: "coverage-table" });
    table(t2, ["labeler", "answered", "of", "coverage", "no verdict, by reason"],
      L.coverage.map((c) => [c.labeler, c.answered, c.total, pct(ratio(c.answered, c.total)), Object.entries(c.notes).map(([k, n]) => `${k}: ${num(n)}`).join(", ") || "–"]));
    f.append(t1, t2);
    note("κ corrects the agreement for chance; the 2×2 counts are on traces both labelers answered. Click a bar for the traces where that pair disagrees.");
  }

  function thinking() {
    const T = OV.thinking;
    const [f, note] = figure("thinking", "Thinking's answer vs final answer");
    const cell = (k, tc, fc) => h("td", { class: "num cell", "data-cell": k, title: "click to list these traces",
      onclick: open(`thinking ${tc ? "right" : "wrong"}, final ${fc ? "right" : "wrong"}`, (t) => t.thinking_correct === tc && t.final_correct === fc) }, num(T[k]));
    f.append(h("table", { class: "twobytwo" },
      h("tr", {}, h("th", {}, ""), h("th", {}, "final right"), h("th", {}, "final wrong")),
      h("tr", {}, h("th", {}, "thinking right"), cell("rr", true, true), cell("rw", true, false)),
      h("tr", {}, h("th", {}, "thinking wrong"), cell("wr", false, true), cell("ww", false, false))));
    note(`Off the diagonal: the final answer says something else than the thinking concluded. ${num(T.unknown)} traces lack one of the answers. Answers equivalent in ${pct(T.rate)} of decided traces (${num(T.disagrees)} misaligned).`);
  }

  return { header, render };
})();
