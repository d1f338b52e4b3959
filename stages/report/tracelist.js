/* The trace table: sortable columns, filters that combine (all checked must hold), full-text
   search over ids, problems, answers and step text, a selection from a chart, and keys:
   j / k or arrows move, Enter opens, / searches. */
const List = (() => {
  const yn = (v) => (v == null ? "–" : v ? "✓" : "✗");
  const minConf = (t) => t.steps.reduce((m, s) => (s[1] != null && (m == null || s[1] < m) ? s[1] : m), null);
  // [header, value for sorting, cell]
  const COLUMNS = [
    ["problem", (t) => t.pid, (t) => h("code", {}, t.pid)],
    ["#", (t) => t.sample, (t) => t.sample],
    ["final", (t) => t.final_correct, (t) => chip(yn(t.final_correct), t.final_correct ? "good" : t.final_correct === false ? "bad" : "")],
    ["thinking", (t) => t.thinking_correct, (t) => yn(t.thinking_correct)],
    ["consensus", (t) => t.consensus, (t) => t.consensus],
    ["first error", (t) => t.first_error, (t) => (t.first_error == null ? "–" : t.first_error < 0 ? "none" : t.first_error)],
    ["steps", (t) => t.n_steps, (t) => t.n_steps],
    ["tokens", (t) => t.tokens, (t) => num(t.tokens)],
    ["answer conf", (t) => t.answer_conf, (t) => confidenceOf(t.answer_conf)],
    ["min step conf", minConf, (t) => confidenceOf(minConf(t))],
    ["flags", (t) => t.flags.length, (t) => t.flags.map((k) => chip(k, "flag"))],
  ];
  const state = { filters: new Set(), q: "", sort: null, desc: false, picked: null, rows: [], cursor: -1 };
  const body = () => $("#trace-rows");
  let haystacks = null;  // lower-cased text per trace, built on the first search
  const text = (t) => [t.id, t.pid, t.problem, t.final, t.thinking_answer, t.answer_text, ...t.steps.map((s) => s[0])].join("\n").toLowerCase();

  function setup() {
    const box = $("#filters");
    for (const [k, d] of Object.entries(META.filters)) {
      const n = TRACES.filter((t) => t.flags.includes(k)).length;
      box.append(h("label", { class: "filter", title: d }, h("input", { type: "checkbox", value: k, onchange: (e) => toggle(k, e.target.checked) }),
        ` ${k.replace(/_/g, " ")} `, h("span", { class: "muted" }, `${num(n)}/${num(OV.totals.filters[k])}`)));
    }
    $("#search").addEventListener("input", (e) => { state.q = e.target.value.trim().toLowerCase(); fill(); });
    $("#trace-head").replaceChildren(h("tr", {}, COLUMNS.map(([name], i) => h("th", { class: "sortable", "data-col": i, onclick: () => sortBy(i) }, name))));
    document.addEventListener("keydown", key);
  }
  function toggle(k, on) {
    if (on) state.filters.add(k);
    else state.filters.delete(k);
    fill();
  }
  function sortBy(i) {
    state.desc = state.sort === i ? !state.desc : false;
    state.sort = i;
    fill();
  }
  /* A chart's selection: shown as a removable chip, combined with the filters and the search. */
  function select(label, test) {
    state.picked = { label, test };
    location.hash = "traces";
    fill();
  }

  function matching() {
    let rows = TRACES.filter((t) => [...state.filters].every((k) => t.flags.includes(k)) && (!state.picked || state.picked.test(t)));
    if (state.q) {
      haystacks = haystacks || new Map(TRACES.map((t) => [t, text(t)]));
      rows = rows.filter((t) => haystacks.get(t).includes(state.q));
    }
    if (state.sort != null) {
      const get = COLUMNS[state.sort][1], dir = state.desc ? -1 : 1;
      const cmp = (a, b) => (a == null ? (b == null ? 0 : 1) : b == null ? -1 : a < b ? -dir : a > b ? dir : 0);  // nulls last
      rows = rows.map((t, i) => [t, i]).sort((x, y) => cmp(get(x[0]), get(y[0])) || x[1] - y[1]).map(([t]) => t);
    }
    return rows;
  }

  function fill() {
    const rows = (state.rows = matching());
    const shown = rows.slice(0, 3000);
    body().replaceChildren(...shown.map((t, i) => h("tr", { "data-id": t.id, class: t === View.current() ? "active" : "", onclick: () => { state.cursor = i; open(t); } },
      COLUMNS.map(([, , cell]) => h("td", {}, cell(t))))));
    state.cursor = Math.min(state.cursor, shown.length - 1);
    for (const th of document.querySelectorAll("#trace-head th")) th.dataset.sort = Number(th.dataset.col) === state.sort ? (state.desc ? "desc" : "asc") : "";
    $("#picked").replaceChildren(...(state.picked ? [chip(`from chart: ${state.picked.label}`, "flag"), h("button", { type: "button", onclick: () => { state.picked = null; fill(); } }, "clear")] : []));
    const all = META.shown === META.total;
    const none = !rows.length ? (state.q && state.filters.size === 0 && !state.picked
      ? (all ? " — no trace's id, problem, answer or step text contains this" : ` — not among the embedded traces; the page embeds ${num(META.shown)} of ${num(META.total)} (raise --max-traces to embed more)`)
      : " — nothing matches every condition; uncheck a filter or clear the chart selection") : "";
    $("#list-count").textContent = `${num(rows.length)} matching of ${num(TRACES.length)} embedded` + (rows.length > shown.length ? ` (first ${shown.length} listed)` : "") + none;
    mark();
  }
  function mark() {
    const trs = body().children;
    for (let i = 0; i < trs.length; i++) {
      trs[i].classList.toggle("active", trs[i].dataset.id === (View.current() || {}).id);
      trs[i].classList.toggle("cursor", i === state.cursor);
    }
  }
  const open = (t) => { location.hash = "trace=" + t.id; };

  function key(e) {
    if ($("#tab-traces").hidden || e.ctrlKey || e.metaKey || e.altKey) return;
    const typing = /^(INPUT|SELECT|TEXTAREA)$/.test((e.target || {}).tagName || "");
    if (e.key === "/" && !typing) { e.preventDefault(); $("#search").focus(); return; }
    if (typing && !["ArrowDown", "ArrowUp", "Enter"].includes(e.key)) return;
    const n = Math.min(3000, state.rows.length);
    if (!n) return;
    if (e.key === "j" || e.key === "ArrowDown") state.cursor = Math.min(n - 1, state.cursor + 1);
    else if (e.key === "k" || e.key === "ArrowUp") state.cursor = Math.max(0, state.cursor - 1);
    else if (e.key === "Enter") return state.cursor >= 0 && open(state.rows[state.cursor]);
    else return;
    e.preventDefault();
    mark();
    const tr = body().children[state.cursor];
    if (tr) tr.scrollIntoView({ block: "nearest" });
  }

  return { setup, fill, select, mark };
})();
