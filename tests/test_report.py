"""``ganframe report RUN``: the page and figures of a real tiny run, runs that lack files, and a real browser.

One short real run (digits, 12 steps, a sample grid every step, a score every 6 steps, health
probes every 3) is shared by the module. The browser test opens the report in headless Chromium
through a local HTTP server and checks that every image loads and every reference resolves; it is
skipped when no Chromium is installed, unless ``GANFRAME_REQUIRE_BROWSER=1`` (CI), where it fails.
"""

from __future__ import annotations

import html
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image
from typer.testing import CliRunner

import ganframe
from ganframe.cli import app
from ganframe.report import MAX_GRIDS, write_report
from tinyrun import tiny_config

CLI = Path(sys.executable).with_name("ganframe")
MARKUP = '<script>alert("x")</script> & <b>bold</b>'  # text from the run's files that must stay text
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run with samples, losses, scores and health probes; one warning and one rollback added
    whose text holds markup (a real rollback needs a diverging run)."""
    root = tmp_path_factory.mktemp("report")
    config = tiny_config(root, steps=12, metrics={"fid": {}}, evaluation={"every": 6, "samples": 100},
                         callbacks={"samples": {"every": 1}, "checkpoint": {"every": 12}, "metrics": {"every": 2}},
                         health={"every": 3, "samples": 32})
    path = ganframe.train(config, progress=False).path
    assert (path / "health.csv").is_file() and (path / "health.json").is_file()
    health = json.loads((path / "health.json").read_text())
    health["warnings"].append({"step": 9, "kind": "mode_collapse", "message": MARKUP, "advice": "lower the <lr>"})
    (path / "health.json").write_text(json.dumps(health))
    meta = json.loads((path / "run.json").read_text())
    meta["rollbacks"] = [{"step": 7, "network": MARKUP, "value": "nan", "skips": 10, "restored_step": 6}]
    (path / "run.json").write_text(json.dumps(meta))
    return path


class References(HTMLParser):
    """Every ``src`` and ``href`` of a page, the ids it defines, and the tags it uses."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name == "src":
                self.sources.append(value or "")
            elif name == "href":
                self.links.append(value or "")
            elif name == "id":
                self.ids.add(value or "")


def check_self_contained(page: Path) -> References:
    """Every image is a readable PNG inside the page's folder; links go to the page's own anchors only."""
    references = References()
    references.feed(page.read_text(encoding="utf-8"))
    assert not references.tags & {"script", "link", "iframe", "object", "embed"}
    for source in references.sources:
        target = (page.parent / source).resolve()
        assert not Path(source).is_absolute() and page.parent.resolve() in target.parents, source
        with Image.open(target) as image:
            assert image.format == "PNG" and image.width > 0
    for link in references.links:
        assert link.startswith("#") and link[1:] in references.ids, link
    assert not re.search(r"(https?|file):", page.read_text(encoding="utf-8"))
    return references


def test_report_of_a_full_run(run_dir: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(run_dir)])

    assert result.exit_code == 0, result.output
    page = run_dir / "report" / "report.html"
    assert str(page) in result.stdout
    references = check_self_contained(page)
    figures = {Path(source).name for source in references.sources}
    assert {"losses.png", "scores.png", "health.png"} <= figures
    grids = sorted(name for name in figures if name.startswith("samples_step_"))
    assert len(grids) == MAX_GRIDS and grids[0].endswith("_0000001.png") and grids[-1].endswith("_0000012.png")
    text = page.read_text(encoding="utf-8")
    assert "<script>" not in text and "<b>bold" not in text and html.escape(MARKUP) in text  # escaped, twice
    warnings = len(json.loads((run_dir / "health.json").read_text())["warnings"])  # the added one is the last
    assert "lower the &lt;lr&gt;" in text and f">W{warnings}<" in text and ">R1<" in text
    assert re.search(r"<th>fid</th><td>[^<]* at step 12; best [^<]* at step \d+ \(lower is better\)</td>", text)
    assert "What this run does not have" not in text
    assert html.escape('arch = "dense"') in text  # the resolved config
    assert (run_dir / "report" / "figures").is_dir() and not list((run_dir / "report").glob(".*.tmp"))


def test_report_elsewhere_is_self_contained_and_replaces_its_old_figures(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "samples_step_9999999.png").write_bytes(b"an older report's grid")
    (out / "figures" / "mine.png").write_bytes(b"the user's")

    done = subprocess.run([str(CLI), "report", str(run_dir), "--out", str(out)], capture_output=True, text=True,
                          timeout=120)

    assert done.returncode == 0, done.stderr
    assert f"wrote the report to {out / 'report.html'}" in done.stdout
    assert not (out / "figures" / "samples_step_9999999.png").exists() and (out / "figures" / "mine.png").exists()
    moved = Path(shutil.copytree(out, tmp_path / "elsewhere"))
    shutil.rmtree(out)
    check_self_contained(moved / "report.html")


def test_a_run_that_lacks_files_gets_a_report_saying_so(run_dir: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run_dir / "config.toml", bare)
    (bare / "metrics.csv").write_text("step,d_loss\n2,one\n")
    (bare / "health.json").write_text("[1, 2]")

    page = write_report(bare)

    text = page.read_text(encoding="utf-8")
    assert "What this run does not have" in text
    for name in ("run.json", "evaluations.csv", "evaluations.json", "health.csv", "samples/"):
        assert f"<code>{name}</code>" in text, name
    assert "metrics.csv cannot be read" in text and "line 2: could not convert string to float" in text
    assert "<code>health.json</code>: cannot be read" in text and "expected a JSON object, found list" in text
    assert check_self_contained(page).sources == []


@pytest.mark.parametrize("case", ["missing", "file", "no-config"])
def test_a_path_that_is_no_run_is_refused(case: str, tmp_path: Path) -> None:
    path = tmp_path / "nowhere"
    if case == "file":
        path.write_text("notes")
    elif case == "no-config":
        path.mkdir()
    says = {"missing": "run directory '.*nowhere' does not exist",
            "file": "is not a ganframe run directory \\(it is a file\\)",
            "no-config": "is not a ganframe run directory \\(it has no config.toml\\)"}[case]

    with pytest.raises(ganframe.ConfigError, match=says):
        write_report(path)
    assert not (path / "report").exists()


def test_the_cli_imports_matplotlib_only_for_the_report() -> None:
    done = subprocess.run([sys.executable, "-c", "import sys, ganframe.cli; print('matplotlib' in sys.modules)"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


# -- in a real browser ----------------------------------------------------------------------------------

HARNESS = """<!DOCTYPE html><html><body><iframe id="report" src="report/report.html" width="1200" height="900"></iframe>
<script>
document.getElementById("report").addEventListener("load", function () {
  var doc = this.contentDocument, result = {images: [], links: [], others: []};
  Array.prototype.forEach.call(doc.images, function (img) {
    result.images.push({src: img.getAttribute("src"), loaded: img.complete && img.naturalWidth > 0,
                        width: img.naturalWidth});
  });
  Array.prototype.forEach.call(doc.querySelectorAll("[href]"), function (a) {
    var href = a.getAttribute("href");
    result.links.push({href: href, resolves: href.charAt(0) === "#" && !!doc.getElementById(href.slice(1))});
  });
  Array.prototype.forEach.call(doc.querySelectorAll("script, link, iframe, object, embed, [src]:not(img)"),
                               function (e) { result.others.push(e.outerHTML.slice(0, 200)); });
  var out = document.createElement("pre");
  out.id = "result";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script></body></html>
"""


def find_browser() -> str | None:
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, list[tuple[str, int]]]]:
    """``tmp_path`` over HTTP on 127.0.0.1 (a file:// page may not look into its iframe): base URL and the requests."""
    requests: list[tuple[str, int]] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            requests.append((self.path, int(code) if str(code).isdigit() else 0))

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_every_image_of_the_report_loads_in_headless_chromium(run_dir: Path, tmp_path: Path,
                                                               served: tuple[str, list[tuple[str, int]]]) -> None:
    browser = find_browser()
    if browser is None:
        message = f"no Chromium found (looked for {', '.join(BROWSERS)}); apt-get install chromium"
        if os.environ.get("GANFRAME_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (GANFRAME_REQUIRE_BROWSER=1)")
        pytest.skip(message)
    page = write_report(run_dir, tmp_path / "report")
    (tmp_path / "harness.html").write_text(HARNESS)
    base, requests = served

    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000", "--dump-dom",
         f"{base}/harness.html"],
        capture_output=True, text=True, timeout=120)

    found = re.search(r'<pre id="result">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no result in the page (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    result = json.loads(html.unescape(found.group(1)))
    expected = check_self_contained(page).sources
    assert len(result["images"]) == len(expected) >= MAX_GRIDS + 3
    assert all(image["loaded"] and image["width"] > 0 for image in result["images"]), result["images"]
    assert result["links"] and all(link["resolves"] for link in result["links"]), result["links"]
    assert result["others"] == []
    served_paths = [path for path, _ in requests]
    assert all(code == 200 for path, code in requests if path != "/favicon.ico"), requests
    assert all(f"/report/{source}" in served_paths for source in expected)
