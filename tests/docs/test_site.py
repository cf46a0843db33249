"""The built site in a real browser: Debian's Chromium, driven by Playwright.

The site is served on 127.0.0.1 by a ``http.server`` thread. Every page is
opened; none may send a request anywhere else (every request is observed, and
those to another host fail at a dead proxy), get a response >= 400, log a console
error (beyond ``CONSOLE_ALLOWED``), show a broken image, leave math
untypeset or show a Python traceback. Notebook pages must show executed
output, and the search page must find pages. Screenshots (whole pages, the first screen
of API pages) go to ``docs/_build/screenshots/`` for a person to look at.

Chromium is the system's (``/usr/bin/chromium``); Playwright never downloads
a browser here.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from _docsite import BUILD, VIGNETTES

pytestmark = pytest.mark.docs

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = BUILD / "screenshots"

# Every request to a host other than 127.0.0.1 goes to a proxy address where nothing
# listens, so it fails on this machine; the checks observe requests rather than
# intercept them (Playwright's interception would turn the browser's cache off).
NO_PROXY = {"server": "http://127.0.0.1:9", "bypass": "127.0.0.1"}

#: Console errors that are not the site's fault, as (regex, why).
CONSOLE_ALLOWED: list[tuple[str, str]] = []

#: Pages whose HTML has notebook cells (myst-nb) must show at least one output.
NOTEBOOK_PAGES = ["getting-started.html"] + [f"vignettes/{p.stem}.html" for p in VIGNETTES]

# Text that only appears when Python code failed while the page was made.
TRACEBACK = "Traceback (most recent call last)"


@contextlib.contextmanager
def serve(folder: Path):
    """Serve ``folder`` on http://127.0.0.1:<free port>/ from a thread; yields the base URL."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def end_headers(self):
            # the files do not change while they are served: let the browser keep the
            # theme's and MathJax's files instead of asking again on every page
            self.send_header("Cache-Control", "max-age=3600")
            super().end_headers()

        def log_message(self, format, *args):
            pass  # quiet: the checks record what they need

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            f"the browser check needs Chromium at {CHROMIUM} (Debian's chromium package). "
            "Install it with `sudo apt-get install -y chromium` (.ci/run does this on CI), "
            "then run the tests again. Playwright's own browser download is not used.",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser check needs Playwright for Python: pip install -e '.[docs]'",
                    pytrace=False)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                      headless=True, proxy=NO_PROXY)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Visit:
    """What one page did in the browser."""

    page: str
    external: list[str] = field(default_factory=list)  # requests to another host (they fail)
    failed: list[str] = field(default_factory=list)  # responses >= 400, failed requests
    console: list[str] = field(default_factory=list)  # console errors, uncaught exceptions
    images: int = 0
    broken_images: list[str] = field(default_factory=list)
    math: int = 0  # math elements on the page
    untypeset: list[str] = field(default_factory=list)  # math MathJax left alone or failed on
    traceback: bool = False
    outputs: int = 0  # notebook cell outputs shown


# Runs in the page once it has loaded: waits for MathJax (when the page has math) and for
# every image (lazy ones made eager), then reports what the checks look at.
_INSPECT = """async ({mathTimeoutMs, traceback}) => {
    const out = {math: 0, untypeset: [], images: 0, broken: [], traceback: false, outputs: 0};
    const maths = Array.from(document.querySelectorAll(".math"));
    out.math = maths.length;
    if (maths.length) {
        const ready = () => window.MathJax && MathJax.startup && MathJax.startup.promise;
        const start = Date.now();
        while (!ready() && Date.now() - start < mathTimeoutMs) {
            await new Promise(done => setTimeout(done, 50));
        }
        if (ready()) {
            await MathJax.startup.promise;
        } else {
            out.untypeset.push("MathJax did not start");
        }
        for (const e of maths) {
            if (!e.querySelector("mjx-container") || e.querySelector("mjx-merror")) {
                out.untypeset.push(e.textContent.trim().slice(0, 80));
            }
        }
    }
    const images = Array.from(document.images);
    images.forEach(i => { i.loading = "eager"; });
    await Promise.all(images.map(i => i.complete ? null : new Promise(done => {
        i.addEventListener("load", done);
        i.addEventListener("error", done);
    })));
    out.images = images.length;
    out.broken = images.filter(i => !(i.complete && i.naturalWidth > 0))
        .map(i => i.getAttribute("src"));
    // docstring examples that raise on purpose are doctest blocks: left out
    const copy = (document.querySelector("main") || document.body).cloneNode(true);
    copy.querySelectorAll(".doctest, .highlight-pycon").forEach(e => e.remove());
    out.traceback = copy.textContent.includes(traceback)
        || document.querySelector(".cell_output .traceback") !== null;
    out.outputs = document.querySelectorAll(".cell_output").length;
    return out;
}"""


def visit_pages(context, base: str, pages: list[str], screenshots: dict[str, Path] | None = None,
                math_timeout_ms: int = 60_000) -> dict[str, Visit]:
    """Open each of ``pages`` (paths under ``base``) in turn and record what the checks look at.

    One tab serves all pages (a new tab per page costs twice the time); every page is
    inspected only once it has loaded, so nothing of one page is counted for the next.
    """
    host = urlsplit(base).netloc
    tab = context.new_page()
    seen = Visit("")

    def request(req):
        parts = urlsplit(req.url)
        if parts.scheme not in ("data", "blob") and parts.netloc != host:
            seen.external.append(req.url)

    def response(resp):
        if resp.status >= 400 and urlsplit(resp.url).path != "/favicon.ico":
            seen.failed.append(f"{resp.status} {resp.url}")

    def requestfailed(req):
        if req.url not in seen.external:
            seen.failed.append(f"failed {req.url}: {req.failure}")

    def console(msg):
        if msg.type == "error" and not any(re.search(rx, msg.text) for rx, _ in CONSOLE_ALLOWED):
            seen.console.append(msg.text)

    tab.on("request", request)
    tab.on("response", response)
    tab.on("requestfailed", requestfailed)
    tab.on("console", console)
    tab.on("pageerror", lambda exc: seen.console.append(f"uncaught: {exc}"))
    visits = {}
    try:
        for page in pages:
            seen = visits[page] = Visit(page)
            tab.goto(f"{base}/{page}", wait_until="load")
            found = tab.evaluate(_INSPECT, {"mathTimeoutMs": math_timeout_ms,
                                            "traceback": TRACEBACK})
            seen.math, seen.untypeset = found["math"], found["untypeset"]
            seen.images, seen.broken_images = found["images"], found["broken"]
            seen.traceback, seen.outputs = found["traceback"], found["outputs"]
            if screenshots and page in screenshots:
                screenshots[page].parent.mkdir(parents=True, exist_ok=True)
                # full pages of what a person reads through; the first screen of the API pages
                full = page in NOTEBOOK_PAGES or not page.startswith("api/")
                tab.screenshot(path=str(screenshots[page]), full_page=full)
    finally:
        tab.close()
    return visits


def site_pages(html: Path) -> list[str]:
    """Every HTML page of the site (not the theme's or Sphinx's own folders)."""
    pages = []
    for path in sorted(html.rglob("*.html")):
        rel = path.relative_to(html)
        if not any(part.startswith("_") for part in rel.parts[:-1]):
            pages.append(rel.as_posix())
    return pages


@pytest.fixture(scope="module")
def visits(site, browser):
    """Every page of the built site, visited once (screenshots in docs/_build/screenshots)."""
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    with serve(site.html) as base:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            pages = site_pages(site.html)
            shots = {page: SCREENSHOTS / (page.replace("/", "__")[:-5] + ".png") for page in pages}
            return visit_pages(context, base, pages, shots)
        finally:
            context.close()


def _report(visits, attr) -> dict[str, object]:
    return {p: getattr(v, attr) for p, v in visits.items() if getattr(v, attr)}


def test_site_has_the_expected_pages(visits):
    expected = {"index.html", "search.html", "genindex.html", "execution.html",
                "plots/index.html", "api/index.html", "api/pymlm.html",
                "api/generated/pymlm.lmer.html", *NOTEBOOK_PAGES}
    assert expected <= set(visits), sorted(expected - set(visits))


def test_no_request_leaves_localhost(visits):
    assert _report(visits, "external") == {}


def test_no_failed_response(visits):
    assert _report(visits, "failed") == {}


def test_no_console_error(visits):
    assert _report(visits, "console") == {}


def test_every_image_loads(visits):
    assert _report(visits, "broken_images") == {}
    assert all(visits[p].images > 0 for p in NOTEBOOK_PAGES if p.startswith("vignettes/"))


def test_math_is_typeset(visits):
    assert _report(visits, "untypeset") == {}
    with_math = [p for p, v in visits.items() if v.math]
    assert any(p.startswith("vignettes/") for p in with_math), "no vignette page shows math"


def test_no_traceback_on_any_page(visits):
    assert [p for p, v in visits.items() if v.traceback] == []


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_notebook_page_shows_executed_output(visits, page):
    assert visits[page].outputs >= 1


def test_search_finds_lmer(site, browser):
    with serve(site.html) as base:
        tab = browser.new_page()
        try:
            tab.goto(f"{base}/search.html?q=lmer", wait_until="load")
            tab.wait_for_selector("#search-results li", timeout=60_000)
            hits = tab.eval_on_selector_all("#search-results li a", "els => els.map(e => e.href)")
        finally:
            tab.close()
    assert any(h.endswith("api/generated/pymlm.lmer.html") for h in hits), hits
    assert any("/vignettes/" in h for h in hits), hits


CONTROL_PAGE = """<!doctype html><html><head><title>control</title>
<link rel="icon" href="data:,">
<script src="http://localhost:9/outside.js"></script></head>
<body><main>
<span class="math">\\(x^2\\)</span>
<img src="missing.png">
<div class="cell_output"><pre>Traceback (most recent call last):
ValueError: boom</pre></div>
<script>console.error("control error");</script>
</main></body></html>
"""


def test_the_checks_catch_a_bad_page(browser, tmp_path):
    """A page with an outside script, a missing image, untypeset math, a traceback and a
    console error: every check must notice (the site's pages pass the same checks)."""
    (tmp_path / "bad.html").write_text(CONTROL_PAGE, encoding="utf-8")
    with serve(tmp_path) as base:
        context = browser.new_context()
        try:
            seen = visit_pages(context, base, ["bad.html"], math_timeout_ms=2_000)["bad.html"]
        finally:
            context.close()
    assert seen.external == ["http://localhost:9/outside.js"]
    assert any(f.startswith("404 ") and f.endswith("/missing.png") for f in seen.failed)
    assert seen.broken_images == ["missing.png"]
    assert seen.untypeset == ["MathJax did not start", "\\(x^2\\)"]
    assert seen.traceback
    assert any("control error" in c for c in seen.console), seen.console
