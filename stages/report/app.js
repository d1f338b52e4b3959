/* Thoughtmill inspector: the evaluation tab, routing and start-up. Routes are URL hashes
   (#overview, #traces, #trace=<id>, #evaluation) so views can be linked. */

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
    if (t) View.show(t);
    else $("#trace").replaceChildren(h("p", { class: "muted" }, `Trace ${hash.slice(6)} is not embedded in this page.`));
  } else if (tab === "traces" && !View.current() && TRACES.length) View.show(TRACES[0]);
}

Overview.header();
Overview.render();
evaluation();
List.setup();
List.fill();
window.addEventListener("hashchange", route);
route();
