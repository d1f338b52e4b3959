/* One trace: answers, per-step verdict chips (a labeler's own verdict apart from labels it
   carries after its first error or infers, failure reasons inline, MC as reached/rollouts), and
   its pairs with chosen and rejected side by side. */
const View = (() => {
  let current = null;
  const yes = (v, t, f) => (v == null ? chip("n/a") : v ? chip(t || "✓", "good") : chip(f || "✗", "bad"));
  const fe = (v) => (v == null ? "n/a" : v < 0 ? "none" : `step ${v}`);

  /* Codes from `stages/report/marks.py`. */
  function verdict(name, code, t, extra) {
    const f = name === "consensus" ? t.first_error : t.labelers[name];
    const x = extra || "";
    switch (code) {
      case "+": return chip(`${name}${x} ✓`, "good", `${name}'s own verdict on this step: right`);
      case "-": return chip(`${name}${x} ✗`, "bad", `${name}'s own verdict: wrong` + (f != null && f >= 0 ? ` (its first error, step ${f})` : ""));
      case "i": return chip(`${name}${x} ✓ inferred`, "inferred", `not rolled out from this step: right because it lies before ${name}'s first error`);
      case "c": return chip(`${name}${x} ✗ carried`, "carried", `labeled wrong only because ${name}'s first error (step ${f}) comes earlier: not a verdict on this step`);
      case "r": return chip(`${name} ✓ after repair`, "good", "right again: a later step repaired the first error (self-corrected)");
      case "0": return chip(`${name} –`, "", "no checkable claim in this step");
      default: return chip(`${name}: ${t.notes[name] || (name === "consensus" ? "no consensus" : "no verdict")}`, "failed", t.notes[name] ? `${name} gave no usable verdict on this trace` : "");
    }
  }
  function stepLabels(s, t) {
    const [, , low, sym, mc, tally, judge, cons] = s;
    const k = Array.isArray(tally) ? ` ${tally[0]}/${tally[1]}` : tally != null ? ` ${tally.toFixed(2)}` : "";
    return [verdict("symbolic", sym, t), verdict("mc", mc, t, k), verdict("judge", judge, t), verdict("consensus", cons, t),
      low ? chip(`${low} low-conf tokens`) : null];
  }
  function legend() {
    return h("div", { class: "legend" }, "step colour = confidence exp(mean token logprob):",
      ...[0.5, 0.9, 0.99, 0.999].map((c) => [h("span", { class: "sw", style: `background:${confColor(c)}` }), String(c)]),
      h("span", { class: "sw", style: `background:${confColor(null)}` }), "none",
      h("span", { class: "muted" }, " · chips: ✓/✗ a labeler's own verdict; “carried”: after its first error; “inferred”: not rolled out; MC as reached/rollouts"));
  }

  /* A pair: where both sides share text it is collapsed; what differs is side by side, marked. */
  function pairView(p, t) {
    const role = p.ctrace === t.id ? "chosen" : p.rtrace === t.id ? "rejected" : "prefix source";
    const other = p.ctrace === t.id ? p.rtrace : p.rtrace === t.id ? p.ctrace : null;
    const link = other ? (BY_ID.has(other) ? h("a", { class: "tr", href: "#trace=" + other }, other.slice(0, 10)) : h("span", { title: "not embedded" }, other.slice(0, 10))) : null;
    const side = (name, body, conf) => h("div", { class: "side " + name }, h("div", { class: "muted" }, `${name} · confidence ${conf == null ? "n/a" : Math.exp(conf).toFixed(3)}`),
      h("div", { class: "ptext" }, h("mark", {}, body || "∅ (nothing beyond the shared text)"), p.tail ? h("span", { class: "tail" }, p.tail) : null));
    return h("div", { class: "pair", "data-pair": p.id },
      h("div", { class: "phead" }, chip(p.kind, "flag"), ` ${p.source} · this trace is ${role} · margin ${num(p.margin)}`, p.step != null ? ` · step ${p.step}` : "", link ? [" · other trace ", link] : ""),
      p.shared_chars ? h("details", { class: "shared" }, h("summary", {}, `shared prefix (${num(p.shared_chars)} chars)`), h("div", { class: "ptext" }, p.shared)) : h("div", { class: "muted" }, "no shared prefix"),
      h("div", { class: "sides" }, side("chosen", p.chosen, p.cconf), side("rejected", p.rejected, p.rconf)));
  }

  function show(t) {
    current = t;
    List.mark();
    const misaligned = t.agrees === false;
    const steps = t.steps.map((s, i) => {
      const marks = Object.entries(t.labelers).filter(([, v]) => v === i).map(([k]) => k);
      return h("li", { class: "step" + (t.first_error === i ? " first-error" : ""), "data-conf": s[1] ?? "", style: `background-color:${confColor(s[1])}` },
        h("div", { class: "idx" }, `step ${i}`, h("br"), `conf ${confidenceOf(s[1])}`, t.first_error === i ? h("div", { class: "marker" }, "⚑ first error") : null),
        h("div", { class: "txt" }, s[0]), h("div", { class: "labels" }, stepLabels(s, t), marks.length ? h("div", { class: "marker" }, `first error per ${marks.join(", ")}`) : null));
    });
    const fr = t.frontier, pairs = t.pairs.map((i) => PAIRS[i]);
    const notes = Object.entries(t.notes);
    $("#trace").replaceChildren(...[
      h("h2", {}, `Problem ${t.pid} · sample ${t.sample}`), h("p", { class: "muted" }, `trace ${t.id} · ${t.model} · finish ${t.finish} · ${num(t.tokens)} thinking tokens` + (t.overthinking != null ? ` · overthinking ×${num(t.overthinking)}` : "")),
      h("div", {}, t.flags.length ? t.flags.map((k) => chip(k, "flag", META.filters[k])) : chip("no filter matches")),
      h("div", { class: "text" }, t.problem),
      h("div", { class: "answers" }, h("div", {}, "gold answer", h("b", {}, t.gold ?? "–")),
        h("div", { class: misaligned ? "misaligned" : "" }, "thinking's concluded answer ", yes(t.thinking_correct), h("b", {}, t.thinking_answer ?? "–")),
        h("div", { class: misaligned ? "misaligned" : "" }, "final answer ", yes(t.final_correct), h("b", {}, t.final ?? "–"), `confidence ${t.answer_conf == null ? "n/a" : num(t.answer_conf)} · `, t.agrees == null ? "agreement unknown" : t.agrees ? "agrees with thinking" : h("span", { class: "marker" }, "MISALIGNED with thinking"))),
      h("h3", {}, `Labels · consensus ${t.consensus} · first error ${fe(t.first_error)}`),
      h("table", {}, h("tr", {}, h("th", {}, "labeler"), h("th", {}, "first error")),
        ...Object.entries(t.labelers).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, v == null && t.notes[k] ? `failed: ${t.notes[k]}` : fe(v)))), h("tr", {}, h("th", {}, "consensus"), h("th", {}, fe(t.first_error)))),
      notes.length ? h("p", { class: "failed-note" }, "No usable verdict: ", notes.map(([k, v]) => `${k} — ${v}`).join("; ")) : null,
      h("h3", {}, `Steps (${t.n_steps})`), legend(), h("ol", { class: "steps" }, steps),
      t.cut ? h("p", { class: "muted" }, `${num(t.cut)} chars of step text not embedded (size budget).`) : null,
      h("h3", {}, "Answer text"), h("div", { class: "text" }, (t.answer_text ?? "").trim()),
      fr ? h("p", {}, "Frontier: ", yes(fr.keep, "kept", "dropped"), fr.drop_reason ? ` ${fr.drop_reason}` : "", ` · student pass rate ${num(fr.pass_rate)} · IFD ${num(fr.ifd)}`) : null,
      h("h3", {}, `Pairs (${t.n_pairs})`), t.n_pairs > t.pairs.length ? h("p", { class: "muted" }, `first ${t.pairs.length} listed (size budget)`) : null,
      pairs.length ? h("div", { class: "pairs" }, pairs.map((p) => pairView(p, t))) : h("p", { class: "muted" }, "This trace takes part in no pair."),
      h("details", {}, h("summary", {}, "labeler provenance"), h("pre", {}, t.provenance ?? "")),
    ].filter((n) => n != null));
  }

  return { show, current: () => current };
})();
