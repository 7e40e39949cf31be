"""The pages warn, clearly, when the recording fails during a live session (a full disk, via
the store's fault-simulation hook), while the live display goes on; the warning leaves once
storage works again. Real uvicorn, real headless Chromium; waits are on DOM conditions."""

from __future__ import annotations

import pytest

from api.schema import StartSessionRequest
from api.settings import Settings
from browser_support import TIMEOUT_MS

pytestmark = pytest.mark.browser


def _pragma(server, statement: str) -> None:  # type: ignore[no-untyped-def]
    rec = server.app.state.manager.current.recorder
    rec.writer.writer.call_in_writer_thread(lambda c: c.execute(statement)).result(10)


def test_pages_show_a_storage_warning_while_feedback_goes_on(browser, live_server,  # noqa: F811
                                                             tmp_path) -> None:
    from playwright.sync_api import expect

    start = StartSessionRequest(script="flexion_reps", n_reps=8, speed=4.0, loop=True, level=6)
    server = live_server(Settings(autostart=start, data_dir=tmp_path))
    patient = browser.new_page(viewport={"width": 1280, "height": 800})
    patient.goto(server.login_url("/"))
    therapist = browser.new_page(viewport={"width": 1280, "height": 800})
    therapist.goto(server.login_url("/therapist", role="therapist"))
    for page in (patient, therapist):
        expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=TIMEOUT_MS)
        expect(page.locator("#storage-warning")).to_be_hidden()
    _pragma(server, "PRAGMA max_page_count = 1")  # the disk is full from now on
    expect(therapist.locator("#storage-warning")).to_be_visible(timeout=TIMEOUT_MS)
    expect(therapist.locator("#storage-text")).to_contain_text("full", timeout=TIMEOUT_MS)
    expect(therapist.locator("#storage-text")).to_contain_text("Free disk space")
    expect(patient.locator("#storage-warning")).to_be_visible(timeout=TIMEOUT_MS)
    expect(patient.locator("#storage-text")).to_contain_text("not being saved")
    # live feedback goes on: the angle keeps changing under the warning
    first = patient.locator("#angle").text_content()
    patient.wait_for_function(f"document.getElementById('angle').textContent !== {first!r}",
                              timeout=TIMEOUT_MS)
    expect(patient.locator("#conn")).to_have_attribute("data-state", "live")
    _pragma(server, "PRAGMA max_page_count = 1073741823")  # space again: the retry stores it
    expect(patient.locator("#storage-warning")).to_be_hidden(timeout=TIMEOUT_MS)
    expect(therapist.locator("#storage-warning")).to_be_hidden(timeout=TIMEOUT_MS)
