"""Nothing the browser shows comes from the internet: a real headless Chromium, its resolver
told that no host but 127.0.0.1 exists, records every request a page makes (Chrome DevTools'
``Network.requestWillBeSent`` events in its performance log). /docs (Swagger UI) lists the
API's operations, /redoc shows its reference, and the dashboard's pages render, each with every
request to the pool's own address (ReDoc's bundle also asks for Redocly's logo from its CDN,
which the page's Content-Security-Policy stops in the browser). A negative control runs the
same check on a FastAPI app with its default, CDN-loaded /docs: the check sees the CDN and no
operations."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import uvicorn
from fastapi import FastAPI
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from fairpool.schemas.queues import ProjectCreate, QueueCreate, ResourceSpec
from tests.dashboard.test_dashboard import CHROMEDRIVER, CHROMIUM, _missing, sign_in
from tests.e2e.conftest import Pool, start_pool, stop_pool

WAIT_S = 30
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@dataclass
class Visit:
    shown: bool  # the element the page was waited for appeared
    requests: list[str]  # every URL the page asked for
    refused: list[str]  # those the page's Content-Security-Policy stopped in the browser
    console: list[str]  # the browser's console messages (CSP refusals land there)

    def external(self) -> list[str]:
        """Requests the page asked for anywhere but this machine's loopback address (data:
        and blob: URLs are no requests on the network)."""
        return [u for u in self.requests if urlsplit(u).scheme not in ("data", "blob")
                and urlsplit(u).hostname != "127.0.0.1"]

    def sent_out(self) -> list[str]:
        """External requests that left the browser (not stopped by the page's policy)."""
        return [u for u in self.external() if u not in self.refused]


@pytest.fixture(scope="module")
def offline() -> Iterator[WebDriver]:
    if _missing():
        pytest.fail("this test needs headless Chromium and its driver (" + ", ".join(_missing())
                    + " not found): apt-get install chromium chromium-driver", pytrace=False)
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--lang=en-US",
                # no name resolves but the loopback address: the internet is not there
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--disable-background-networking", "--disable-component-update"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def visit(driver: WebDriver, url: str, ready: str, timeout: float = WAIT_S) -> Visit:
    """Load ``url``, wait for an element ``ready`` (a CSS selector), and give every request
    the page made meanwhile."""
    driver.get_log("performance")  # drop what earlier pages logged
    driver.get_log("browser")
    driver.get(url)
    try:
        WebDriverWait(driver, timeout, poll_frequency=0.2).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, ready))
        shown = True
        time.sleep(0.5)  # what the page loads once it shows (fonts, icons)
    except TimeoutException:
        shown = False
    urls: dict[str, str] = {}
    requests, refused = [], []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message.get("method") == "Network.requestWillBeSent":
            urls[params["requestId"]] = params["request"]["url"]
            requests.append(params["request"]["url"])
        elif (message.get("method") == "Network.loadingFailed"
              and params.get("blockedReason") == "csp"):
            refused.append(urls.get(params["requestId"], "?"))
    console = [e["message"] for e in driver.get_log("browser")]
    return Visit(shown, requests, refused, console)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    p = start_pool(tmp_path_factory.mktemp("offline"), "--simulate-gpus", "2")
    try:
        p.client.create_department(QueueCreate(name="lab", quota=ResourceSpec(gpus=2)))
        p.client.create_project(ProjectCreate(name="vision", department="lab",
                                              quota=ResourceSpec(gpus=2)))
        job = p.client.submit(project="vision", gpus=1, name="train",
                              command=[sys.executable, "-c", "import time; time.sleep(600)"])
        p.wait(job.id, {"running"})
        yield p
    finally:
        stop_pool(p)


def test_swagger_ui_renders_with_nothing_from_the_internet(offline: WebDriver,
                                                           pool: Pool) -> None:
    seen = visit(offline, pool.url + "/docs", ".opblock")
    assert seen.shown, f"/docs listed no operations; it asked for {seen.requests}"
    assert not seen.external(), f"/docs asked outside this machine: {seen.external()}"
    assert not seen.refused, seen.refused
    assert any(u.endswith("/docs-static/swagger-ui-bundle.js") for u in seen.requests)
    assert any(u.endswith("/openapi.json") for u in seen.requests)
    titles = [e.text for e in offline.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")]
    assert "/api/v1/queues" in " ".join(titles).replace("\u200b", "")
    assert not [m for m in seen.console if "Content Security Policy" in m], seen.console


def test_redoc_renders_with_nothing_from_the_internet(offline: WebDriver, pool: Pool) -> None:
    """ReDoc's bundle asks for Redocly's logo from its CDN whatever its options: the page's
    policy stops that in the browser (the logo is left out), and nothing else is asked."""
    seen = visit(offline, pool.url + "/redoc", "[data-section-id]")
    assert seen.shown, f"/redoc showed no reference; it asked for {seen.requests}"
    assert not seen.sent_out(), f"/redoc sent requests outside this machine: {seen.sent_out()}"
    assert set(seen.external()) <= {REDOCLY_LOGO}, seen.external()
    assert any(u.endswith("/docs-static/redoc.standalone.js") for u in seen.requests)
    assert any(u.endswith("/openapi.json") for u in seen.requests)
    assert "/api/v1/queues" in offline.find_element(By.CSS_SELECTOR, "body").text


def test_the_dashboard_loads_nothing_from_the_internet(offline: WebDriver, pool: Pool) -> None:
    offline.delete_all_cookies()
    sign_in(offline, pool.url, pool.token)
    WebDriverWait(offline, WAIT_S).until(lambda d: "/ui/login" not in d.current_url)
    job = pool.client.jobs()[0]
    for path in ("/ui", "/ui/queues", "/ui/jobs", f"/ui/jobs/{job.id}", "/ui/usage",
                 "/ui/login"):
        seen = visit(offline, pool.url + path, "main, form")
        assert seen.shown, f"{path} did not render"
        assert seen.requests, f"{path}: no request recorded (is the log read at all?)"
        assert not seen.external(), f"{path} asked outside this machine: {seen.external()}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_check_catches_a_cdn_page(offline: WebDriver) -> None:
    """FastAPI's own /docs (Swagger UI from a CDN) fails the check: the CDN request is seen,
    and without it no operation is listed."""
    plain = FastAPI()

    @plain.get("/things")
    def things() -> list[str]:
        return []

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(plain, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 10
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        seen = visit(offline, f"http://127.0.0.1:{port}/docs", ".opblock", timeout=5)
    finally:
        server.should_exit = True
        thread.join(10)
    assert not seen.shown
    assert any("cdn.jsdelivr.net" in u for u in seen.sent_out()), seen.requests
