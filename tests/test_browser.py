"""The pages in a real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright,
against a real uvicorn running a simulated session. Waits are on DOM conditions only."""

from __future__ import annotations


import pytest

from api.schema import StartSessionRequest
from api.settings import Settings

from browser_support import SHOTS, TIMEOUT_MS  # noqa: E402,F401

pytestmark = pytest.mark.browser




@pytest.fixture
def server(live_server):
    start = StartSessionRequest(script="flexion_reps", n_reps=8, speed=4.0, loop=True, level=6)
    return live_server(Settings(autostart=start))


def test_patient_page_follows_the_live_session(browser, server) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.login_url("/"))  # the one-time login link, as `lumbo demo` prints
    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=TIMEOUT_MS)

    # calibration is shown while the patient calibrates (the session starts with it)
    page.wait_for_function("document.getElementById('angle').textContent !== '–'",
                           timeout=TIMEOUT_MS)
    first = page.locator("#angle").text_content()
    page.wait_for_function(f"document.getElementById('angle').textContent !== {first!r}",
                           timeout=TIMEOUT_MS)
    page.wait_for_function("Number(document.getElementById('reps').textContent) >= 1",
                           timeout=TIMEOUT_MS)
    reps = int(page.locator("#reps").text_content())
    page.wait_for_function(f"Number(document.getElementById('reps').textContent) > {reps}",
                           timeout=TIMEOUT_MS)
    assert page.locator("#reps-total").text_content() == "8"
    assert page.locator("#target-text").text_content().startswith("Target ")
    assert page.locator("#zone").get_attribute("data-kind") in {"neutral", "below", "in", "above"}
    assert page.locator("#zone-text").text_content()  # the zone is said in words, not colour only
    page.wait_for_function("document.getElementById('lastrep').textContent.startsWith('Repetition')",
                           timeout=TIMEOUT_MS)
    expect(page.locator("#stale")).to_be_hidden()
    expect(page.locator("#start")).to_be_disabled()
    expect(page.locator("#stop")).to_be_enabled()

    # keyboard: M toggles the sound
    before = page.locator("#mute").get_attribute("aria-pressed")
    page.keyboard.press("m")
    assert page.locator("#mute").get_attribute("aria-pressed") != before
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "patient.png"))

    # losing the server shows "data is stale" (no waiting on time: on the page's own condition)
    server.stop()
    expect(page.locator("#stale")).to_be_visible(timeout=TIMEOUT_MS)
    assert "stale" in page.locator("#stale").text_content().lower()
    assert errors == []


def test_therapist_page_shows_trace_health_and_sets_target(browser, server) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.login_url("/therapist", role="therapist"))
    page.wait_for_function("window.lumboChart && window.lumboChart.points > 300",
                           timeout=TIMEOUT_MS)
    health = page.locator("#health")
    expect(health).to_contain_text("100 Hz", timeout=TIMEOUT_MS)
    expect(health).to_contain_text("yes")
    expect(page.locator("#m-target")).to_contain_text("(L6)", timeout=TIMEOUT_MS)
    expect(page.locator("#m-fps")).not_to_have_text("–")

    # the trace canvas really has ink on it (not a blank chart)
    inked = page.evaluate("""() => {
        const c = document.getElementById('trace'); const g = c.getContext('2d');
        const d = g.getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] < 60 && d[i+1] > 60 && d[i+2] > 130) n++;
        return n; }""")
    assert inked > 100

    # change the target: the status and the frames follow
    page.select_option("#level", "7")
    page.click("#level-form button[type=submit]")
    expect(page.locator("#m-target")).to_contain_text("(L7)", timeout=TIMEOUT_MS)
    page.fill("#t-deg", "8")
    page.fill("#t-tol", "5")
    page.click("#target-form button[type=submit]")
    expect(page.locator("#control-msg")).to_contain_text("rest zone", timeout=TIMEOUT_MS)
    page.fill("#t-deg", "18")
    page.fill("#t-tol", "4")
    page.click("#target-form button[type=submit]")
    expect(page.locator("#m-target")).to_contain_text("explicit", timeout=TIMEOUT_MS)
    page.wait_for_function("document.querySelectorAll('#events li').length >= 1",
                           timeout=TIMEOUT_MS)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "therapist.png"), full_page=True)
    assert errors == []


def test_page_reports_a_schema_version_mismatch(browser, server) -> None:
    from playwright.sync_api import expect

    page = browser.new_page()
    page.route("**/api/schema/frame",
               lambda route: route.fulfill(json={"schema_version": 2, "properties": {}}))
    page.goto(server.login_url("/"))
    expect(page.locator("#schema-error")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#schema-error")).to_contain_text("version 2")


def test_start_and_stop_from_the_patient_page(browser, live_server) -> None:
    from playwright.sync_api import expect

    srv = live_server(Settings(default_level=6))
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(srv.login_url("/"))
    expect(page.locator("#idle")).to_contain_text("Press Start", timeout=TIMEOUT_MS)
    page.locator("#start").focus()
    page.keyboard.press("Enter")  # keyboard operable
    expect(page.locator("#calibration")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#cal-steps li[aria-current=step]")).to_have_count(1)
    expect(page.locator("#stop")).to_be_enabled()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "patient_calibration.png"))
    page.click("#stop")
    expect(page.locator("#idle")).to_contain_text("stopped", timeout=TIMEOUT_MS)
    expect(page.locator("#start")).to_be_enabled()
    expect(page.locator("#calibration")).to_be_hidden()
