"""The web dashboard end to end: a real ``fairpool up`` with simulated GPUs, driven by a real
headless Chromium through Selenium. It signs in, reads the node grid, the queues and the jobs,
cancels a job through the cancel form and sees the allocation drop; a researcher of another
project sees only its own; a wrong token is refused without a cookie. Every page is saved as a
PNG under ``$FAIRPOOL_TEST_OUTPUT/dashboard`` (default ``test-output/dashboard``) for people to
look at."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from fairpool.schemas.jobs import JobOut
from fairpool.schemas.queues import IdlePolicySpec, ProjectCreate, QueueCreate, ResourceSpec
from tests.e2e.conftest import BIN, Pool, start_pool, stop_pool

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REPO = Path(__file__).resolve().parents[2]
OUT = Path(os.environ.get("FAIRPOOL_TEST_OUTPUT", str(REPO / "test-output"))) / "dashboard"


def work(util: float) -> list[str]:
    """A long job that logs a line and reports its (simulated) GPU utilisation every second."""
    return [sys.executable, "-c",
            "import time, fairpool\nfor i in range(600):\n"
            "    print(f'step {i}: loss {1 / (i + 1):.4f}', flush=True)\n"
            f"    fairpool.report_utilization({util})\n    time.sleep(1)"]


WAIT_S = 30
T = TypeVar("T")


@dataclass
class Org:
    pool: Pool
    train: JobOut  # vision, 2 whole GPUs: the job the admin cancels
    frac: JobOut  # nlp, half a GPU
    rita_job: JobOut  # audio, a quarter of a GPU
    rita: str  # a researcher on audio only


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    pool = start_pool(tmp_path_factory.mktemp("dash"), "--simulate-gpus", "4",
                      env_extra={"FAIRPOOL_SAMPLE_EVERY_S": "1"})
    try:
        c = pool.client
        c.create_department(QueueCreate(name="research", quota=ResourceSpec(gpus=3)))
        c.create_department(QueueCreate(name="media", quota=ResourceSpec(gpus=1)))
        # audio flags a job idle after a second below 10 % (notify only)
        idle = IdlePolicySpec(action="notify", threshold=0.1, after_s=1)
        for name, dept, gpus in (("vision", "research", 2), ("nlp", "research", 1),
                                 ("audio", "media", 1)):
            c.create_project(ProjectCreate(name=name, department=dept,
                                           quota=ResourceSpec(gpus=gpus),
                                           idle=idle if name == "audio" else None))
        rita = c.create_token("rita").token
        c.grant("rita", "researcher", "audio")
        train = c.submit(project="vision", command=work(0.82), gpus=2, name="resnet-train")
        frac = c.submit(project="nlp", command=work(0.4), gpu_fraction=0.5, name="bert-eval")
        mine = c.submit(project="audio", command=work(0.02), gpu_fraction=0.25,
                        name="whisper-ft")
        for job in (train, frac, mine):
            pool.wait(job.id, {"running"})
        yield Org(pool, train, frac, mine, rita)
    finally:
        stop_pool(pool)


def _missing() -> list[str]:
    return [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]


def browser(found: WebDriver | None) -> WebDriver:
    """The browser, or a failure (not a skip) saying what to install: the dashboard must be
    tested."""
    if found is None:
        pytest.fail("the dashboard test needs headless Chromium and its driver ("
                    f"{', '.join(_missing())} not found): install the Debian packages chromium "
                    "and chromium-driver (apt-get install chromium chromium-driver)",
                    pytrace=False)
    return found


@pytest.fixture(scope="module")
def chromium() -> Iterator[WebDriver | None]:
    if _missing():
        yield None  # each browser test fails with what to install
        return
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--disable-gpu", "--lang=en-US"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_window_size(1400, 1000)
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        yield browser
    finally:
        browser.quit()


# -- helpers ------------------------------------------------------------------------------------
def wait(d: WebDriver, check: Callable[[WebDriver], T], what: str, timeout: float = WAIT_S) -> T:
    """Wait until ``check`` gives something truthy; a page the auto-refresh just replaced is
    read again."""
    def attempt(drv: WebDriver) -> Any:
        try:
            return check(drv)
        except StaleElementReferenceException:
            return False
    return WebDriverWait(d, timeout, poll_frequency=0.2).until(attempt, f"waiting for {what}")


def find(d: WebDriver, css: str) -> WebElement:
    return wait(d, lambda drv: drv.find_element(By.CSS_SELECTOR, css), css)


def click(d: WebDriver, css: str) -> None:
    def go(drv: WebDriver) -> bool:
        drv.find_element(By.CSS_SELECTOR, css).click()
        return True
    wait(d, go, f"clicking {css}")


def text(d: WebDriver, css: str) -> str:
    return wait(d, lambda drv: drv.find_element(By.CSS_SELECTOR, css).text, css).strip()


def shot(d: WebDriver, name: str) -> None:
    """A PNG of the whole page (the window grows to the page's height for it)."""
    height = int(d.execute_script("return document.documentElement.scrollHeight"))
    d.set_window_size(1400, max(1000, min(height + 140, 6000)))
    try:
        assert d.save_screenshot(str(OUT / f"{name}.png")), name
    finally:
        d.set_window_size(1400, 1000)


def sign_in(d: WebDriver, url: str, token: str) -> None:
    d.get(url + "/ui/login")
    field = find(d, "#token")
    field.clear()
    field.send_keys(token)
    click(d, "#signin")


def rgb(color: str) -> tuple[int, ...]:
    """#rrggbb or the browser's rgb(a)(r, g, b[, a]) as (r, g, b)."""
    if color.startswith("#"):
        return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))
    return tuple(int(v) for v in re.findall(r"\d+", color)[:3])


# -- the scenarios ------------------------------------------------------------------------------
def test_wrong_token_is_refused_without_a_cookie(chromium: WebDriver | None, org: Org) -> None:
    driver = browser(chromium)
    url = org.pool.url
    driver.delete_all_cookies()
    driver.get(url + "/ui")
    wait(driver, lambda d: "/ui/login" in d.current_url, "the redirect to the login page")
    find(driver, "#token")
    shot(driver, "01-login")
    sign_in(driver, url, "fp_000000000000_" + "x" * 43)
    error = text(driver, "#login-error")
    assert "not accepted" in error
    assert "/ui/login" in driver.current_url
    assert not [c for c in driver.get_cookies() if c["name"] == "fairpool_ui"]
    shot(driver, "02-login-wrong-token")


def test_admin_sees_the_pool_and_cancels_a_job(chromium: WebDriver | None, org: Org) -> None:
    driver = browser(chromium)
    url, train, frac = org.pool.url, org.train, org.frac
    driver.delete_all_cookies()
    driver.get(url + "/ui")
    wait(driver, lambda d: "/ui/login" in d.current_url, "the redirect to the login page")
    sign_in(driver, url, org.pool.token)
    wait(driver, lambda d: d.current_url.rstrip("/").endswith("/ui"), "the overview")
    cookie = next(c for c in driver.get_cookies() if c["name"] == "fairpool_ui")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/ui"
    assert cookie["secure"] is False  # plain http here; https sets Secure
    assert text(driver, "#user") == "admin"

    # the grid: the training job's two GPUs in vision's colour, nlp's half GPU written out
    swatch = find(driver, ".legend .key[data-project='vision'] .swatch").get_attribute(
        "data-color")
    assert swatch is not None
    segs = wait(driver, lambda d: d.find_elements(
        By.CSS_SELECTOR, f".seg[data-job='{train.id}']"), "vision's GPUs in the grid")
    assert len(segs) == 2
    for seg in segs:
        assert seg.get_attribute("data-color") == swatch
        assert rgb(seg.value_of_css_property("background-color")) == rgb(swatch)
    half = find(driver, f".seg[data-job='{frac.id}']")
    assert half.get_attribute("data-share") == "0.5"
    assert half.text == "0.5"
    assert "simulated" in text(driver, ".node .card-head")
    # this pool runs jobs as the server's own account: the page says they are not isolated
    assert find(driver, ".node [data-isolation]").get_attribute("data-isolation") == "none"
    assert "not isolated" in text(driver, ".node .isolation-note")
    assert text(driver, "#stat-gpus") == "4"
    assert text(driver, "#stat-allocated").startswith("2.75")
    shot(driver, "03-overview")

    # queues: vision holds 2 GPUs
    click(driver, ".nav a[href='/ui/queues']")
    allocated = "tr[data-queue='vision'] td[data-field='allocated']"
    bar = "tr[data-queue='vision'] svg.qbar rect.allocated"
    assert text(driver, allocated) == "2"
    assert float(find(driver, bar).get_attribute("width") or 0) > 0
    assert text(driver, "tr[data-queue='nlp'] td[data-field='allocated']") == "0.5"
    find(driver, "#series-chart svg")
    shot(driver, "04-queues")

    # jobs: the list, then the training job's page
    click(driver, ".nav a[href='/ui/jobs']")
    row = f"tr[data-job='{train.id}']"
    assert text(driver, f"{row} .badge") == "running"
    # the utilisation the jobs report (simulated GPUs: labelled sim); audio's job is idle
    wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, f"{row} .util-value").text == "82%",
         "the training job's GPU utilisation")
    assert text(driver, f"{row} .util .tag") == "sim"
    wait(driver, lambda d: d.find_elements(
        By.CSS_SELECTOR, f"tr[data-job='{org.rita_job.id}'] .badge.idle"), "the idle badge")
    shot(driver, "05-jobs")
    click(driver, f"{row} a.job-link")
    wait(driver, lambda d: d.current_url.endswith(f"/ui/jobs/{train.id}"), "the job's page")
    assert text(driver, "#job-state") == "running"
    kinds = [e.get_attribute("data-kind") for e in driver.find_elements(By.CSS_SELECTOR,
                                                                        "#events .event")]
    assert "submitted" in kinds
    assert "running on" in text(driver, "#explain .explain-text")
    wait(driver, lambda d: "step 0" in d.find_element(By.ID, "log").text, "the log tail")
    assert text(driver, "#log-scope").startswith("the tail: last 500 lines of rank 0")
    assert (driver.find_element(By.ID, "log-download").get_attribute("href") or "").endswith(
        f"/ui/jobs/{train.id}/log?attempt=0")
    shot(driver, "06-job-running")

    # cancel through the form (it asks first), then watch the page turn to cancelled
    click(driver, "#cancel")
    WebDriverWait(driver, 10).until(ec.alert_is_present()).accept()
    wait(driver, lambda d: "cancelled=true" in d.current_url, "the page after cancelling")
    assert "Cancel requested" in text(driver, "#notice")
    wait(driver, lambda d: d.find_element(By.ID, "job-state").get_attribute("data-state")
         == "cancelled", "the job to show cancelled")
    assert not driver.find_elements(By.ID, "cancel")
    wait(driver, lambda d: "cancelled" in d.find_element(By.ID, "explain").text, "the explain")
    shot(driver, "07-job-cancelled")

    # queues again: vision's allocation is gone, its area stays in the chart
    click(driver, ".nav a[href='/ui/queues']")
    assert text(driver, allocated) == "0"
    assert float(find(driver, bar).get_attribute("width") or 1) == 0
    assert text(driver, "tr[data-queue='research'] td[data-field='allocated']") == "0.5"
    click(driver, "#periods a[data-hours='0.25']")  # the last 15 minutes: the job's stretch
    wait(driver, lambda d: "hours=0.25" in d.current_url, "the 15-minute chart")
    find(driver, "#series-chart svg g.series[data-project='vision']")
    assert text(driver, allocated) == "0"
    shot(driver, "08-queues-after-cancel")

    # usage: vision's GPU-hours, the bar chart and the CSV
    click(driver, ".nav a[href='/ui/usage']")
    assert float(text(driver, "#usage-table tr[data-key='vision'] td.num.strong")) > 0
    find(driver, "#usage-chart svg .urow[data-key='vision']")
    csv_href = find(driver, "#csv").get_attribute("href")
    assert csv_href is not None
    shot(driver, "09-usage")
    cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
    csv = httpx.get(csv_href, cookies=cookies, timeout=10)
    assert csv.status_code == 200 and csv.text.startswith("project,department")


def test_a_researcher_sees_only_its_own_project(chromium: WebDriver | None, org: Org) -> None:
    driver = browser(chromium)
    url = org.pool.url
    driver.delete_all_cookies()
    sign_in(driver, url, org.rita)
    wait(driver, lambda d: d.current_url.rstrip("/").endswith("/ui"), "rita's overview")
    assert text(driver, "#user") == "rita"
    find(driver, f".seg[data-job='{org.rita_job.id}']")
    hidden = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".seg.hidden"),
                  "another project's share")
    assert hidden
    assert "(another project)" in text(driver, ".node .tiles")
    legend = [e.get_attribute("data-project") for e in
              driver.find_elements(By.CSS_SELECTOR, ".legend .key[data-project]")]
    assert legend == ["audio"]
    page = driver.page_source
    assert org.frac.id not in page and org.train.id not in page and "nlp" not in page
    shot(driver, "10-rita-overview")

    click(driver, ".nav a[href='/ui/jobs']")
    find(driver, f"tr[data-job='{org.rita_job.id}']")
    ids = {e.get_attribute("data-job") for e in
           driver.find_elements(By.CSS_SELECTOR, "#jobs-table tr[data-job]")}
    assert ids == {org.rita_job.id}
    assert org.frac.id not in driver.page_source
    shot(driver, "11-rita-jobs")

    click(driver, ".nav a[href='/ui/queues']")
    find(driver, "tr[data-queue='audio']")
    rows = {e.get_attribute("data-queue") for e in
            driver.find_elements(By.CSS_SELECTOR, "#queues tr[data-queue]")}
    assert rows == {"audio"}
    shot(driver, "12-rita-queues")

    # another project's job is not there for her: a page saying so, never a traceback
    driver.get(f"{url}/ui/jobs/{org.frac.id}")
    assert find(driver, "#error").get_attribute("data-status") == "404"
    assert f"job {org.frac.id} does not exist" in text(driver, "#error-message")
    assert "Traceback" not in driver.page_source
    shot(driver, "13-rita-other-project-job")

    # logging out clears the cookie and every page asks to sign in again
    click(driver, "#logout")
    wait(driver, lambda d: "/ui/login" in d.current_url, "the login page after logging out")
    assert not [c for c in driver.get_cookies() if c["name"] == "fairpool_ui"]
    driver.get(url + "/ui/jobs")
    wait(driver, lambda d: "/ui/login" in d.current_url, "the login page")


def test_cancel_form_needs_its_csrf_token(org: Org) -> None:
    """The cookie alone does not cancel: the form's token must match the session's."""
    url, job = org.pool.url, org.rita_job
    with httpx.Client(base_url=url, timeout=10) as http:
        login = http.post("/ui/login", data={"token": org.rita, "next": f"/ui/jobs/{job.id}"},
                          follow_redirects=False)
        assert login.status_code == 303
        assert "httponly" in login.headers["set-cookie"].lower()
        page = http.get(f"/ui/jobs/{job.id}")
        found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
        assert found is not None
        refused = http.post(f"/ui/jobs/{job.id}/cancel", data={"csrf": "0" * 64})
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")
        assert "did not come from your dashboard" in refused.text
        assert org.pool.client.job(job.id).state == "running"
        # another project's job: the guard answers first, as for the API
        other = http.post(f"/ui/jobs/{org.frac.id}/cancel", data={"csrf": found.group(1)})
        assert other.status_code == 404
        assert org.pool.client.job(org.frac.id).state == "running"
        done = http.post(f"/ui/jobs/{job.id}/cancel", data={"csrf": found.group(1)},
                         follow_redirects=False)
        assert done.status_code == 303
    org.pool.wait(job.id, {"cancelled"})


def test_over_https_the_cookie_is_secure(tmp_path: Path) -> None:
    made = subprocess.run([str(BIN), "tls", "self-signed", "--out", str(tmp_path / "tls")],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    pool = start_pool(tmp_path, "--simulate-gpus", "1", "--tls-cert", str(cert), "--tls-key",
                      str(key), tls_cert=cert)
    try:
        with httpx.Client(base_url=pool.url, verify=ssl.create_default_context(
                cafile=str(cert)), timeout=10) as http:
            login = http.post("/ui/login", data={"token": pool.token}, follow_redirects=False)
            assert login.status_code == 303 and login.headers["location"] == "/ui"
            flags = [f.strip().lower() for f in login.headers["set-cookie"].split(";")]
            assert {"secure", "httponly", "samesite=strict", "path=/ui"} <= set(flags)
            assert http.get("/ui").status_code == 200
    finally:
        stop_pool(pool)
