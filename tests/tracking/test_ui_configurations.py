"""The page `sweeps ui` prints on a 4,800-variant sweep, in a real headless Chromium.

configs/card_4800.yaml (48 configurations of 100 seeds), its variants logged with synthetic
results (tests/synthetic.py; no histories: training them is not what is tested) into a
real SQLite store in bulk, its configuration runs written as `sweeps run` writes them; the
store is built once for the session. In a 1600x1000 window the page must list all 48
configurations without "Load more", best first, each with its mean metric in a column; the
ranking metric and the swept settings in view without scrolling; no Assistant panel. A
configuration's "seeds" link (its description) must list its 100 seeds. Screenshots are
saved under $SWEEPS_TEST_OUTPUT (default: test-output/) for a person to look at.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from sweeps.report import results, ties
from sweeps.report.outputs import write_configurations
from sweeps.spec.sweep import load_sweep
from sweeps.tracking import ui
from sweeps.tracking.bulk import BulkTracker
from tests.synthetic import synthetic_result
from tests.tracking.browser import CHROMIUM, Browser
from tests.helpers import free_port
from tests.tracking.ui_process import SweepsUi

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium (scripts/ensure_chromium.sh installs it)"),
]

ROOT = Path(__file__).resolve().parents[2]
START = 300     # s: the server starts in ~20 s alone, minutes on a loaded 2-core machine
RENDER = 180    # s: the page renders with JavaScript after it loads
WIDTH, HEIGHT = 1600, 1000

NAME_CELL = "[col-id=\"attributes.`Run Name`\"]"


@pytest.fixture(scope="session")
def card_4800(tmp_path_factory, _empty_store):
    """(sweep, store URI, tracker, summary) of configs/card_4800.yaml logged once."""
    import shutil

    directory = tmp_path_factory.mktemp("card4800")
    shutil.copy(_empty_store, directory / "mlflow.db")
    uri = f"sqlite:///{directory / 'mlflow.db'}"
    sweep = load_sweep(ROOT / "configs" / "card_4800.yaml")
    tracker = BulkTracker(sweep, uri, histories=())
    tracker.start()
    for start in range(0, len(sweep.variants), 480):
        tracker.log_variants([(v, synthetic_result(sweep, v))
                              for v in sweep.variants[start:start + 480]])
    frame = results.frame_from_records(tracker.records())
    summary = ties.mark_ties(frame, results.summarize(frame))
    write_configurations(tracker, summary, tracker.records())
    tracker.finish()
    return sweep, uri, tracker, summary


def output_dir() -> Path:
    path = Path(os.environ.get("SWEEPS_TEST_OUTPUT", ROOT / "test-output"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def rows(browser: Browser) -> dict:
    """{row index: [run name, {column id: text}]} of the grid's rendered rows, scrolled
    through from top to bottom (the grid renders only the rows near the viewport)."""
    script = f"""(() => {{
        const found = {{}};
        for (const row of document.querySelectorAll('.ag-row[row-index]')) {{
            const i = row.getAttribute('row-index');
            found[i] = found[i] || ['', {{}}];
            for (const cell of row.querySelectorAll('[col-id]')) {{
                const id = cell.getAttribute('col-id');
                if (cell.matches('{NAME_CELL}'))      // (beside the name: its colour chip)
                    found[i][0] = (cell.querySelector('a[href*="/runs/"]') || cell).innerText.trim();
                else found[i][1][id] = cell.innerText.trim();
            }}
        }}
        return found;
    }})()"""
    seen: dict = {}
    viewport = "document.querySelector('.ag-body-viewport')"
    for step in range(60):
        for index, (name, cells) in browser.evaluate(script).items():
            old = seen.setdefault(int(index), ["", {}])
            old[0] = old[0] or name
            old[1].update(cells)
        at_end = browser.evaluate(f"""(() => {{ const v = {viewport};
            const end = v.scrollTop + v.clientHeight >= v.scrollHeight - 2;
            v.scrollTop += v.clientHeight / 2; return end; }})()""")
        if at_end:
            break
        browser.wait_for(f"{viewport}.scrollTop >= 0", RENDER)   # (a turn of the event loop)
    browser.evaluate(f"{viewport}.scrollTop = 0")
    return seen


def header(browser: Browser, column: str) -> dict | None:
    return browser.evaluate(f"""(() => {{
        const cell = document.querySelector('.ag-header-cell[col-id="{column}"]');
        if (!cell) return null;
        const r = cell.getBoundingClientRect();
        return {{left: r.left, right: r.right, top: r.top, bottom: r.bottom}};
    }})()""")


@pytest.mark.timeout(1200)
def test_sweeps_ui_lists_the_48_configurations_best_first_and_each_ones_seeds(card_4800,
                                                                            tmp_path):
    sweep, uri, tracker, summary = card_4800
    metric = results.ranking_metric(summary)
    names = {run_key: name for run_key, name in _group_names(uri, tracker)}
    expected = [names[key] for key in summary["group_key"]]          # best first
    means = dict(zip(summary["group_key"], summary[f"{metric}_mean"]))
    settings = summary.attrs["by"]
    assert len(expected) == 48 and set(summary["n"]) == {100}

    port = free_port(ui.HOST)
    with SweepsUi(str(ROOT / "configs" / "card_4800.yaml"), "--tracking-uri", uri,
                  "--port", str(port), cwd=tmp_path) as process:
        url = process.wait_for_url(START)
        assert url == ui.configurations_url(f"http://{ui.HOST}:{port}", tracker.experiment_id,
                                            tracker.parent_run_id)
        with Browser(WIDTH, HEIGHT) as browser:
            browser.call("Emulation.setDeviceMetricsOverride", session=browser._session,
                         width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)
            browser.open(url)
            browser.wait_for(f"document.querySelectorAll('.ag-row[row-index] {NAME_CELL}')"
                             f".length >= 10 && document.body.innerText.includes("
                             f"'48 matching runs')", RENDER)
            browser.screenshot(output_dir() / "configurations_4800.png")

            # In view without scrolling: the ranking metric and every swept setting.
            for column in [f"metrics.`{metric}`"] + [f"params.`{path}`" for path in settings]:
                box = header(browser, column)
                assert box, f"no column {column}"
                assert 0 <= box["left"] and box["right"] <= WIDTH and box["bottom"] <= HEIGHT, \
                    (column, box)
            text = browser.text()
            assert "MLflow Assistant" not in text           # its panel is not open
            assert "Load more" not in text

            # All 48 on the page, best first, each with its mean.
            shown = rows(browser)
            assert sorted(shown) == list(range(48))
            assert [shown[i][0] for i in range(48)] == expected
            by_name = {name: key for key, name in names.items()}
            for name, cells in shown.values():
                value = float(cells[f"metrics.`{metric}`"].rstrip("."))
                assert value == pytest.approx(means[by_name[name]], rel=1e-3), name

            # A configuration's seeds: its description links to them.
            best = summary["group_key"].iloc[0]
            browser.open(f"http://{ui.HOST}:{port}/#/experiments/{tracker.experiment_id}/runs/"
                         f"{_group_run_id(uri, tracker, best)}")
            link = browser.wait_for("""(() => { const a = [...document.querySelectorAll('a')]
                .find(a => a.textContent.includes('seeds of this configuration'));
                return a && a.href; })()""", RENDER)
            browser.open(link)
            browser.wait_for("document.body.innerText.includes('100 matching runs') && "
                             f"document.querySelectorAll('.ag-row[row-index] {NAME_CELL}')"
                             ".length >= 10", RENDER)
            browser.screenshot(output_dir() / "seeds_of_the_best_configuration.png")
            seeds = rows(browser)
            assert "Load more" not in browser.text()
            assert len(seeds) == 100
            variants = {v.name: v for v in sweep.variants if v.group == best}
            assert {name for name, _ in seeds.values()} == set(variants)
            values = [float(cells[f"metrics.`{metric}`"].rstrip("."))
                      for _, cells in (seeds[i] for i in range(100))]
            assert values == sorted(values)                  # best first
        assert process.stop(signal.SIGINT, timeout=60) == 0, process.output


def _group_names(uri: str, tracker) -> list[tuple[str, str]]:
    from mlflow import MlflowClient

    from sweeps.tracking.groups import group_filter
    return [(run.data.tags["sweep.group_key"], run.info.run_name) for run in
            MlflowClient(uri).search_runs([tracker.experiment_id],
                                          group_filter(tracker.parent_run_id), max_results=1000)]


def _group_run_id(uri: str, tracker, group_key: str) -> str:
    from mlflow import MlflowClient

    from sweeps.tracking.groups import group_filter
    runs = MlflowClient(uri).search_runs(
        [tracker.experiment_id],
        f"{group_filter(tracker.parent_run_id)} and tags.`sweep.group_key` = '{group_key}'")
    assert len(runs) == 1
    return runs[0].info.run_id
