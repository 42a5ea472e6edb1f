"""Real headless Chromium for tests (selenium + Debian's chromium/chromium-driver).

Registered for every test by ``tests/conftest.py`` (``pytest_plugins``)::

    from tests.browser import Browser, login_panel

    async def test_page(running_sqlite, browser: Browser) -> None:
        url = f"http://127.0.0.1:{running_sqlite.http_port}"
        await login_panel(browser, url + "/agent", token)
        await browser.wait_for("#my-calls", text="Tocando")
        await browser.screenshot("agent-ringing")

``browser`` is function-scoped (cookies and storage cleared before each test) on one
Chromium started per session (fixture ``chromium``, the raw selenium WebDriver).
The service under test runs in the test's event loop, so every ``Browser`` method is
a coroutine that drives selenium from a worker thread: the loop keeps serving the
pages while the browser waits. A test that fails leaves ``failed-<test>.png`` in
``test-artifacts/``.

Chromium missing (or selenium not installed): the tests skip with the reason,
unless ``SAC_IVR_REQUIRE_CHROMIUM=1``: then they fail. ``SAC_IVR_CHROMIUM`` and
``SAC_IVR_CHROMEDRIVER`` point at other binaries; ``SAC_IVR_BROWSER_TIMEOUT``
(seconds, default 10) bounds every wait.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
REQUIRE = os.environ.get("SAC_IVR_REQUIRE_CHROMIUM") == "1"
TIMEOUT = float(os.environ.get("SAC_IVR_BROWSER_TIMEOUT", "10"))
WINDOW = (1440, 900)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--lang=pt-BR",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)

T = TypeVar("T")


def _find(env: str, names: tuple[str, ...]) -> str | None:
    if os.environ.get(env):
        return os.environ[env]
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def _unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason} (SAC_IVR_REQUIRE_CHROMIUM=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless Chromium (selenium WebDriver) for the whole session."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[test]')")
    binary = _find("SAC_IVR_CHROMIUM", ("chromium", "chromium-browser", "google-chrome"))
    driver_path = _find("SAC_IVR_CHROMEDRIVER", ("chromedriver",))
    if not binary or not driver_path:
        _unavailable("headless Chromium not found (apt-get install chromium chromium-driver)")
    profile = tempfile.mkdtemp(prefix="sac-ivr-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Times on the pages read as they would in a Brazilian call center.
    service = Service(driver_path, env={**os.environ, "TZ": "America/Sao_Paulo"})
    try:
        driver = webdriver.Chrome(options=options, service=service)
    except Exception as exc:
        shutil.rmtree(profile, ignore_errors=True)
        _unavailable(f"Chromium did not start: {type(exc).__name__}: {exc}")
    driver.set_page_load_timeout(30)
    # Screenshots of exactly WINDOW, whatever the headless window's decorations.
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Browser]:
    """A clean tab: no cookies, blank page. Screenshot on failure."""
    chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})
    chromium.get("about:blank")
    chromium.get_log("browser")  # drop what earlier tests logged
    wrapper = Browser(chromium)
    yield wrapper
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        try:
            wrapper.driver.save_screenshot(str(_artifact(f"failed-{name}")))
        except Exception:
            pass
    chromium.get("about:blank")  # close the page's event streams before the server stops


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


def _artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / (name if name.endswith(".png") else f"{name}.png")


class Browser:
    """Async face of a selenium WebDriver (``.driver`` for anything else)."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run any blocking selenium call without blocking the event loop."""
        return await asyncio.to_thread(fn, *args)

    async def get(self, url: str) -> None:
        await self.call(self.driver.get, url)

    @property
    def url(self) -> str:
        return self.driver.current_url

    async def js(self, script: str, *args: Any) -> Any:
        return await self.call(self.driver.execute_script, script, *args)

    async def js_async(self, script: str, *args: Any) -> Any:
        """``execute_async_script``: the script calls ``arguments[arguments.length-1](v)``."""
        return await self.call(self.driver.execute_async_script, script, *args)

    async def wait_until(
        self, condition: Callable[[Any], T], message: str = "", timeout: float = TIMEOUT
    ) -> T:
        """Wait until ``condition(driver)`` is truthy; returns its value."""
        from selenium.webdriver.support.ui import WebDriverWait

        def wait() -> T:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(
                condition, message
            )

        return await self.call(wait)

    async def wait_for(
        self,
        css: str,
        *,
        text: str | None = None,
        visible: bool = True,
        timeout: float = TIMEOUT,
    ) -> Any:
        """The element matching ``css``, once present (visible; containing ``text``)."""
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.common.by import By

        def ready(driver: Any) -> Any:
            try:
                for element in driver.find_elements(By.CSS_SELECTOR, css):
                    if visible and not element.is_displayed():
                        continue
                    if text is not None and text not in element.text:
                        continue
                    return element
            except StaleElementReferenceException:
                return None
            return None

        what = f"{css!r}" + (f" containing {text!r}" if text is not None else "")
        return await self.wait_until(ready, f"no visible {what}", timeout)

    async def wait_gone(self, css: str, timeout: float = TIMEOUT) -> None:
        """Wait until no visible element matches ``css``."""
        from selenium.webdriver.common.by import By

        def gone(driver: Any) -> bool:
            return not any(e.is_displayed() for e in driver.find_elements(By.CSS_SELECTOR, css))

        await self.wait_until(gone, f"{css!r} still visible", timeout)

    async def wait_for_text(
        self,
        css: str,
        *,
        text: str | None = None,
        visible: bool = True,
        timeout: float = TIMEOUT,
    ) -> str:
        """The text of the element matching ``css`` (as :meth:`wait_for`), read in the
        same look: a live page redraws its lists at every event, so an element found
        first and read afterwards may be gone (stale) by then."""
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.common.by import By

        def ready(driver: Any) -> tuple[str] | None:
            try:
                for element in driver.find_elements(By.CSS_SELECTOR, css):
                    if visible and not element.is_displayed():
                        continue
                    found = element.text
                    if text is not None and text not in found:
                        continue
                    return (found,)
            except StaleElementReferenceException:
                return None
            return None

        what = f"{css!r}" + (f" containing {text!r}" if text is not None else "")
        (found,) = await self.wait_until(ready, f"no visible {what}", timeout)
        return str(found)

    async def text(self, css: str) -> str:
        return await self.wait_for_text(css)

    async def click(self, css: str, text: str | None = None) -> None:
        element = await self.wait_for(css, text=text)
        await self.call(element.click)

    async def fill(self, css: str, value: str, clear: bool = True) -> None:
        """Type like a person (key events), after clearing the field."""
        element = await self.wait_for(css)

        def type_in() -> None:
            if clear:
                element.clear()
            element.send_keys(value)

        await self.call(type_in)

    async def select(self, css: str, value: str) -> None:
        from selenium.webdriver.support.ui import Select

        element = await self.wait_for(css)
        await self.call(Select(element).select_by_value, value)

    async def has_class(self, css: str, name: str) -> bool:
        classes = await self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.className : '';", css
        )
        return name in str(classes).split()

    async def screenshot(self, name: str) -> Path:
        """Save a PNG as ``test-artifacts/<name>.png`` (gitignored) and return its path."""
        path = _artifact(name)
        await self.call(self.driver.save_screenshot, str(path))
        return path

    async def console_errors(self, ignore: tuple[str, ...] = ()) -> list[str]:
        """SEVERE messages the page logged since the last call (script errors etc.)."""
        entries = await self.call(self.driver.get_log, "browser")
        return [
            e["message"]
            for e in entries
            if e.get("level") == "SEVERE" and not any(i in e["message"] for i in ignore)
        ]


# Failed fetches the panels make on purpose (session check before login) log as
# "Failed to load resource: ... 401"; they are not script errors.
EXPECTED_HTTP_ERRORS = ("Failed to load resource",)


def shown_protocol(number: str) -> str:
    """A protocol number as the panels show it: groups of three digits."""
    return " ".join(number[i : i + 3] for i in range(0, len(number), 3))


async def login_panel(browser: Browser, url: str, token: str) -> None:
    """Open a panel page (``/agent``, ``/agent/calls/N``, ``/supervisor``) and log in.

    Then, on the agent panel: ``#who-ext`` (the token's extension),
    ``#live-status[data-state=live]`` (the event stream is up), ``#my-calls
    .call-item.state-ringing|state-connected`` (calls on this extension),
    ``#queue-calls .call-item`` (callers waiting), ``#call-number`` (the open
    protocol, see :func:`shown_protocol`), ``#call-live .badge`` ("Tocando", "Em
    atendimento"), ``#history`` (the caller's other protocols). Supervisor view:
    ``#waiting-total``, ``#kpi-longest.over`` (past the limit), ``#waiting``,
    ``#active``, ``#queues``, ``#agents``.
    """
    await browser.get(url)
    await browser.wait_for("#login-form")
    await browser.fill("#token", token)
    await browser.click("#login-form button[type=submit]")
    await browser.wait_for("#app")
