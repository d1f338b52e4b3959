"""The trace inspector: page size bounds, the stated sampling policy, and the page in a real browser.

The browser test drives Debian's headless Chromium over the DevTools protocol (a websocket on
localhost; the `websockets` client), opens the page from disk, clicks through it like a reader
and fails on any console error or uncaught exception. Chromium comes from
`infra/install-chromium.sh`; a missing browser is a failure, not a skip.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from synthetic_run import write_synthetic_run  # tests/ is on sys.path (pytest rootdir conftest)
from websockets.sync.client import connect

from flows.evaluate import report_layout
from flows.pipeline import PIPELINE
from stages.export.stage import ExportConfig, export_configs
from stages.jsonable import finite
from stages.report import sample
from stages.report.stage import build_report as build_page
from stages.score.stage import ScoreConfig, score

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "out" / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
    "--remote-debugging-port=0",
]


def build_report(source: Path, out: Path, **kw):
    """The page, with a run folder's stage folders where the pipeline spec puts them (as the CLI does)."""
    return build_page(source, out, layout=PIPELINE.inputs_of("report", source), **kw)


class Browser:
    """Headless Chromium with a fresh profile, driven over CDP; collects every error it reports."""

    def __init__(self, profile: Path, timeout: float = 30.0):
        if not Path(CHROMIUM).exists():
            pytest.fail(f"{CHROMIUM} not found: run infra/install-chromium.sh (make setup does)")
        self.timeout, self.errors, self.events, self._id = timeout, [], [], 0
        port_file = profile / "DevToolsActivePort"
        cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + timeout
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if self.proc.poll() is not None or time.time() > deadline:
                self.close()
                pytest.fail(f"chromium did not start: {self.proc.stderr.read().decode(errors='replace')[-2000:]}")
            time.sleep(0.05)
        port = port_file.read_text().split("\n")[0].strip()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as resp:
            page = next(t for t in json.load(resp) if t["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=timeout)
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def _event(self, msg: dict) -> None:
        self.events.append(msg)
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.errors.append(
                f"console.{params['type']}: {[a.get('value', a.get('description')) for a in params['args']]}"
            )
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")

    def send(self, method: str, **params) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=self.timeout))
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)

    def wait_for(self, method: str) -> dict:
        seen = next((e for e in self.events if e.get("method") == method), None)
        deadline = time.time() + self.timeout
        while seen is None:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.time())))
            self._event(msg)
            seen = msg if msg.get("method") == method else None
        self.events.remove(seen)
        return seen

    def open(self, path: Path) -> None:
        self.send("Page.navigate", url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")

    def js(self, expression: str):
        """Evaluate `expression` in the page; its JSON-able value, or the page's exception raised."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def set_input(self, element_id: str, value: str, event: str) -> None:
        """Set a form control's value and fire the event a user's edit would."""
        self.js(
            f"(() => {{ const e = document.getElementById({json.dumps(element_id)}); e.value = {json.dumps(value)};"
            f" e.dispatchEvent(new Event({json.dumps(event)})); }})()"
        )

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return write_synthetic_run(tmp_path_factory.mktemp("inspect") / "run", n_traces=400)


@pytest.fixture
def browser(tmp_path):
    b = Browser(tmp_path / "profile")
    yield b
    b.close()


def _check_overview(b: Browser) -> dict:
    charts = b.js(
        "[...document.querySelectorAll('#charts figure')].map(f => ({id: f.id, svg: f.querySelectorAll('svg').length,"
        " marks: f.querySelectorAll('svg .mark').length, nodes: f.querySelectorAll('svg *').length,"
        " w: f.querySelector('svg') ? f.querySelector('svg').getBoundingClientRect().width : 0,"
        " cells: f.querySelectorAll('td.cell').length}))"
    )
    ids = {c["id"] for c in charts}
    assert ids == {"chart-calibration", "chart-first-error", "chart-length", "chart-labelers", "chart-thinking"}
    for c in charts:
        if c["id"] == "chart-thinking":  # the 2x2 of thinking vs final answer, a table
            assert c["cells"] == 4, c
        else:
            assert c["svg"] == 1 and c["nodes"] > 10 and c["w"] > 100, c
    assert b.js("document.querySelectorAll('#stage-table tr').length") > 1
    assert b.js("document.querySelectorAll('#kappa-table tr').length") == 4  # a header and three labeler pairs
    return {c["id"]: c["marks"] or c["cells"] for c in charts}


ROWS = "[...document.querySelectorAll('#trace-rows tr')]"


def _go(b: Browser, hash_: str) -> None:
    """Navigate within the page and wait until it has (no event fires for the hash it is on)."""
    if b.js("location.hash") == "#" + hash_:
        return
    b.js(f"location.hash = {json.dumps(hash_)}")
    b.wait_for("Page.navigatedWithinDocument")


def _check_filters(b: Browser, every: bool = True) -> None:
    """Each filter alone lists exactly the embedded traces it flags (never an empty list where
    some trace matches); two together list the traces matching both."""
    names = b.js("[...document.querySelectorAll('#filters input')].map(i => i.value)")
    assert {"self_corrected", "no_answer", "judge_failed", "frontier_dropped", "misaligned"} <= set(names), names
    box = "document.querySelector('#filters input[value=\"%s\"]')"
    for name in names:
        want = b.js(f"DATA.traces.filter(t => t.flags.includes('{name}')).length")
        assert want > 0 or not every, f"the synthetic run has no embedded {name} trace"
        b.js(f"{box % name}.click()")
        flags = b.js(f"{ROWS}.map(r => r.lastChild.textContent)")
        assert len(flags) == want and all(name in f for f in flags), (name, len(flags), want)
        b.js(f"{box % name}.click()")
    both = b.js("DATA.traces.filter(t => t.flags.includes('misaligned') && t.flags.includes('confident_error')).length")
    b.js(f"{box % 'misaligned'}.click(); {box % 'confident_error'}.click()")
    assert b.js(f"{ROWS}.length") == both
    b.js(f"{box % 'misaligned'}.click(); {box % 'confident_error'}.click()")
    assert b.js(f"{ROWS}.length") == b.js("DATA.traces.length")


def _check_table_keys_and_search(b: Browser) -> None:
    tokens = ROWS + ".map(r => Number(r.cells[7].textContent.replace(/,/g, '')))"
    b.js("[...document.querySelectorAll('#trace-head th')].find(t => t.textContent === 'tokens').click()")
    up = b.js(tokens)
    assert up == sorted(up) and up[0] < up[-1]
    b.js("[...document.querySelectorAll('#trace-head th')].find(t => t.textContent === 'tokens').click()")
    assert b.js(tokens) == sorted(up, reverse=True)
    second = b.js(f"{ROWS}[1].dataset.id")
    for key in ("j", "j", "Enter"):  # the cursor starts above the first row
        b.js(f"document.dispatchEvent(new KeyboardEvent('keydown', {{key: '{key}', bubbles: true}}))")
    b.wait_for("Page.navigatedWithinDocument")
    assert b.js("location.hash") == f"#trace={second}"
    # full text: words from one trace's step, found whatever case
    tid, words = b.js("(() => { const t = DATA.traces[7]; return [t.id, t.steps[1][0].slice(0, 24)]; })()")
    b.set_input("search", words.upper(), "input")
    found = b.js(f"{ROWS}.map(r => r.dataset.id)")
    assert tid in found and len(found) < b.js("DATA.traces.length")
    b.set_input("search", "no such text anywhere", "input")
    said = b.js("document.getElementById('list-count').textContent")
    assert said.startswith("0 matching") and "raise --max-traces" not in said  # every trace is embedded
    b.set_input("search", "", "input")


def _check_chart_marks(b: Browser) -> None:
    """A mark of each chart (and a 2x2 cell) opens a non-empty list of its traces."""
    marks = {
        "calibration": "#chart-calibration .mark",
        "first-error": "#chart-first-error .mark",
        "length": "#chart-length .mark",
        "labelers": "#chart-labelers .mark",
        "thinking": "#chart-thinking td.cell[data-cell=rr]",
    }
    for name, selector in marks.items():
        _go(b, "overview")
        click = "new MouseEvent('click', {bubbles: true})"
        b.js(f"document.querySelector({json.dumps(selector)}).dispatchEvent({click})")
        b.wait_for("Page.navigatedWithinDocument")
        rows, picked = b.js(f"[{ROWS}.length, document.getElementById('picked').textContent]")
        assert rows > 0 and picked.startswith("from chart"), (name, rows, picked)
        b.js("document.querySelector('#picked button').click()")


def _check_trace_view(b: Browser) -> None:
    b.js("document.querySelector('#filters input[value=misaligned]').click()")
    b.js(f"{ROWS}[0].click()")
    b.wait_for("Page.navigatedWithinDocument")
    view = b.js(
        "({misaligned: document.querySelectorAll('.answers .misaligned').length,"
        " steps: [...document.querySelectorAll('#trace .step')]"
        "   .map(s => [s.dataset.conf, getComputedStyle(s).backgroundColor]),"
        " chips: document.querySelectorAll('#trace .step .labels .chip').length})"
    )
    assert view["misaligned"] == 2, view
    colours = {bg for _, bg in view["steps"]}
    assert view["steps"] and all(conf != "" for conf, _ in view["steps"])
    assert all(bg not in ("rgba(0, 0, 0, 0)", "transparent", "") for bg in colours) and len(colours) > 1, colours
    assert view["chips"] >= 4 * len(view["steps"])  # symbolic, mc, judge and consensus per step
    b.js("document.querySelector('#filters input[value=misaligned]').click()")
    # chips: carried labels apart from own verdicts, a failed judge's reason inline, MC as k/n
    for condition, selector, text in (
        ("t.labelers.mc >= 0 && t.labelers.mc < t.n_steps - 1", ".chip.carried", "carried"),
        ("t.notes.judge", ".chip.failed", "judge: misquoted_step"),
        ("t.steps.some(s => Array.isArray(s[5]))", ".chip", "/4"),
    ):
        _go(b, "trace=" + b.js(f"DATA.traces.find(t => {condition}).id"))
        chips = b.js(f"[...document.querySelectorAll('#trace .step {selector}')].map(c => c.textContent)")
        assert any(text in c for c in chips), (condition, chips[:8])
    # the pair view: chosen and rejected side by side, the shared prefix collapsed, the answer kept
    _go(b, "trace=" + b.js("DATA.traces.find(t => t.pairs.some(i => DATA.pairs[i].kind === 'step')).id"))
    pair = b.js(
        "(() => { const p = [...document.querySelectorAll('#trace .pair')]"
        "   .find(p => p.querySelector('.phead .chip').textContent === 'step');"
        " return {sides: p.querySelectorAll('.sides .side').length, open: p.querySelector('details.shared').open,"
        " shared: p.querySelector('details.shared').textContent,"
        " marks: [...p.querySelectorAll('mark')].map(m => m.textContent)}; })()"
    )
    assert pair["sides"] == 2 and not pair["open"] and "A step both sides share" in pair["shared"], pair
    chosen, rejected = pair["marks"]
    assert chosen.startswith("chosen side") and rejected.startswith("rejected side")
    assert chosen.endswith("\\boxed{1}.") and rejected.endswith("\\boxed{2}.") and "chars] …" in chosen


def test_page_in_browser(synthetic, tmp_path, browser):
    report = build_report(synthetic, tmp_path / "report.html")
    b = browser
    b.open(report.path)
    assert "showing 400 of 400 traces" in b.js("document.getElementById('statement').textContent")
    marks = _check_overview(b)
    assert all(n > 0 for n in marks.values()), marks
    drops = b.js(
        "[...document.querySelectorAll('#drop-table tr')].slice(1).map(r => r.cells[0].textContent"
        " + ':' + r.cells[1].textContent)"
    )
    assert len(drops) >= 4 and len(drops) == len(set(drops)) and not any(d.endswith(":kept") for d in drops), drops
    steps = b.js(
        "Object.fromEntries([...document.querySelectorAll('#funnel-table tr')].slice(1).map(r =>"
        " [r.cells[0].textContent, Number(r.cells[2].textContent.replace(/,/g, ''))]))"
    )
    funnel = json.loads((synthetic / "run.json").read_text())["funnel"]  # the page shows run.json's funnel
    assert {s["step"]: s["n"] for s in funnel["traces"]}.items() <= steps.items(), steps
    assert steps["pairs: deduplicated"] == funnel["pairs"][1]["n"] and steps["config sft"] == funnel["configs"]["sft"]
    shot = b.screenshot(ARTIFACTS / "inspect-overview.png")

    b.js("document.querySelector('nav a[data-tab=traces]').click()")
    b.wait_for("Page.navigatedWithinDocument")
    assert b.js("!document.getElementById('tab-traces').hidden && document.querySelectorAll('#trace .step').length > 0")
    assert b.js(f"{ROWS}.length") == 400
    _check_filters(b)
    _check_table_keys_and_search(b)
    _check_chart_marks(b)
    _check_trace_view(b)
    shot = b.screenshot(ARTIFACTS / "inspect-trace.png")
    print(f"screenshots: {shot.parent}")
    assert shot.stat().st_size > 10_000
    assert not b.errors, b.errors


def test_demo_page_size_and_selection(synthetic, tmp_path):
    report = build_report(synthetic, tmp_path / "all.html")
    assert report.shown == report.total == 400 and report.bytes < 5_000_000
    small = build_report(synthetic, tmp_path / "small.html", max_traces=40, seed=3)
    assert small.shown == 40 and small.total == 400
    assert "showing 40 of 400 traces" in small.statement
    assert "at most 2 per filter" in small.statement and "sha256('3:' + trace_id)" in small.statement
    again = build_report(synthetic, tmp_path / "again.html", max_traces=40, seed=3)
    ids = lambda p: re.findall(r'"id":"(t\d+)"', p.read_text())  # noqa: E731
    assert ids(small.path) == ids(again.path)  # deterministic
    flagged = re.findall(r'"flags":\[([^\]]*)\]', small.path.read_text())
    assert sum(1 for f in flagged if f) >= 16  # the filter quotas come first (8 filters x 2)


def test_100k_trace_page_stays_small(tmp_path):
    start = time.perf_counter()
    root = write_synthetic_run(tmp_path / "big", n_traces=100_000)
    report = build_report(root, tmp_path / "big.html")
    seconds = time.perf_counter() - start
    print(f"100k traces: page {report.bytes / 1e6:.2f} MB, generation + build {seconds:.1f}s (build {report.seconds}s)")
    assert report.bytes < 25_000_000
    assert report.total == 100_000 and report.shown == 2000
    assert report.statement.startswith("showing 2,000 of 100,000 traces; policy: traces matching each filter first")
    assert "overview statistics over all 100,000 traces" in report.statement
    page = report.path.read_text()
    assert '"traces":100000' in page  # the overview counts every trace, not the sample
    assert seconds < 60


def test_long_texts_stay_within_the_byte_budget(tmp_path, monkeypatch):
    root = write_synthetic_run(tmp_path / "long", n_traces=3000, step_repeat=40)  # ~2.5 KB per step
    report = build_report(root, tmp_path / "long.html")
    assert report.shown == 2000 and report.bytes < 25_000_000
    monkeypatch.setattr(sample, "MAX_BYTES", 2_000_000)  # a tight budget cuts the end of the selection
    tight = build_report(root, tmp_path / "tight.html")
    assert 0 < tight.shown < 2000 and tight.bytes < 2_000_000 + 200_000
    assert f"the last {2000 - tight.shown:,} selected were left out" in tight.statement
    assert f"showing {tight.shown:,} of 3,000 traces" in tight.statement


def test_published_dataset_folder(synthetic, tmp_path, browser):
    """A published dataset folder (data/<config>/) shows its traces and dpo pairs."""
    ds = tmp_path / "dataset"
    parts = PIPELINE.inputs_of("export", synthetic)  # the real exporter: data/<config>/<config>.parquet
    export_configs(parts["label"], parts["pairs"], parts["frontier"], ExportConfig(), ds / "data")
    report = build_report(ds, tmp_path / "ds.html")
    assert report.shown == 400 and "dpo" in report.path.read_text()
    browser.open(report.path)
    _check_overview(browser)
    assert "not available in this folder" in browser.js("document.getElementById('meta').textContent")
    assert not browser.errors, browser.errors


def test_evaluation_folder_shows_models_side_by_side(synthetic, tmp_path, browser):
    """An `evaluate` output (one run folder per model, leaderboard.json): the Evaluation tab."""
    root, layout = tmp_path / "eval", report_layout()
    label = PIPELINE.path("label", synthetic)
    traces = pa.concat_tables([pq.read_table(p) for p in sorted(label.glob("*.parquet"))]).to_pylist()
    board = {}
    for model in ("model-a", "model-b"):
        shutil.copytree(label, root / model / layout["label"])
        (root / model / "run.json").write_text("{}")
        board[model] = score(traces, ScoreConfig(exact_truth=False))[1]
    (root / "leaderboard.json").write_text(json.dumps(finite(board)))
    report = build_page(root, tmp_path / "eval.html", layout=layout)
    assert report.total == 2 * len(traces)
    browser.open(report.path)
    assert not browser.js("document.getElementById('nav-evaluation').hidden")
    browser.js("location.hash = 'evaluation'")
    browser.wait_for("Page.navigatedWithinDocument")
    assert not browser.js("document.getElementById('tab-evaluation').hidden")
    header = browser.js("[...document.querySelectorAll('#eval-table th')].map(t => t.textContent)")
    assert header == ["section", "figure", "model-a", "model-b", "difference"]
    cells = browser.js("[...document.querySelectorAll('#eval-table tr')].map(r => r.lastChild.textContent)")
    assert len(cells) > 15 and "intervals overlap" in cells and "beyond the intervals" not in cells  # same data twice
    assert browser.js("document.querySelectorAll('#eval-models table').length") >= 4
    assert not browser.errors, browser.errors


@pytest.mark.vllm
def test_report_on_real_demo_run(demo_run, tmp_path, browser):
    """The page over the real flow's outputs (shared session fixture): small and error-free."""
    root = demo_run[0]
    report = build_report(root, tmp_path / "demo.html")
    assert report.bytes < 5_000_000 and report.shown == report.total > 0
    browser.open(report.path)
    _check_overview(browser)
    browser.js("location.hash = 'traces'")
    browser.wait_for("Page.navigatedWithinDocument")
    assert browser.js("document.querySelectorAll('#trace .step[style*=background]').length") > 0
    _check_filters(browser, every=False)  # whichever filters the demo has rows for list them
    _check_chart_marks(browser)
    browser.screenshot(ARTIFACTS / "inspect-demo-trace.png")
    assert not browser.errors, browser.errors
