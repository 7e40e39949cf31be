"""Graded practice on the pages, in a real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright) against a real uvicorn running a simulated patient who performs the program.

One run covers: the pain rating before (0-10 buttons, keyboard), an exercise with live updates
(forward bending on the gauge), the therapist changing that exercise's level while it runs and
the patient page following (new level, no live guide at level 4), and a self-estimate prompt
answered. Waits are on conditions only (DOM states, the page's practice state).
Screenshots go to $LUMBO_SCREENSHOTS (default /tmp/lumbo_screenshots)."""

from __future__ import annotations


import httpx
import pytest

from api.settings import Settings
from test_practice_live_support import browser_context, sign_in

from browser_support import SHOTS, TIMEOUT_MS  # noqa: E402,F401

pytestmark = pytest.mark.browser


PROGRAM = {"items": [
    {"exercise_id": "flexion_to_target", "level": 1, "sets": 2, "retention": False,
     "rest_after_s": 5},
    {"exercise_id": "lateral_bend_left", "level": 1, "sets": 1, "retention": False},
], "reason": "browser test"}



def test_program_on_the_patient_and_therapist_pages(browser, live_server) -> None:
    from playwright.sync_api import expect

    srv = live_server(Settings())
    access = sign_in(srv.app)
    pid = access.patient_id
    with httpx.Client(base_url=srv.url, timeout=30) as http:
        r = http.post(f"/api/practice/patients/{pid}/baselines", headers=access.therapist_headers,
                      json={"ranges_deg": {"flexion": 40, "lateral_bend_left": 25}})
        assert r.status_code == 200, r.text
        r = http.put(f"/api/practice/patients/{pid}/program", headers=access.therapist_headers,
                     json=PROGRAM)
        assert r.status_code == 200, r.text

    patient_ctx = browser_context(browser, srv.url, access.patient_cookie, access.cookie_name,
                                  viewport={"width": 1366, "height": 1000})
    therapist_ctx = browser_context(browser, srv.url, access.therapist_cookie,
                                    access.cookie_name, viewport={"width": 1400, "height": 1300})
    page = patient_ctx.new_page()
    thera = therapist_ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"patient: {e}"))
    thera.on("pageerror", lambda e: errors.append(f"therapist: {e}"))
    page.goto(srv.url + "/")
    thera.goto(srv.url + "/therapist")
    # the day's program is listed before it starts, with levels
    expect(page.locator("#pp-items li")).to_have_count(2, timeout=TIMEOUT_MS)
    expect(page.locator("#pp-items li").first).to_contain_text("Level 1")
    expect(thera.locator("#pt-apply-flexion_to_target")).to_be_visible(timeout=TIMEOUT_MS)

    # the patient starts today's exercises (the simulated patient performs them)
    with httpx.Client(base_url=srv.url, timeout=30) as http:
        r = http.post("/api/practice/start", headers=access.patient_headers,
                      json={"session": {"speed": 4.0, "seed": 2}})
        assert r.status_code == 200, r.text

    # 1. pain before: big 0-10 buttons, keyboard operable
    pain = page.locator("#pp-pain")
    expect(pain).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#pp-pain-title")).to_contain_text("Before we start")
    expect(page.locator("#pp-status")).to_contain_text("Pain before: not entered")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "practice_patient_pain.png"))
    page.locator("#pp-pain button[data-value='2']").focus()
    page.keyboard.press("ArrowRight")  # to 3
    page.keyboard.press("Enter")
    expect(pain).to_be_hidden(timeout=TIMEOUT_MS)
    expect(page.locator("#pp-status")).to_contain_text("Pain before: 3")

    # 2. forward bending runs at level 1 with live updates on the gauge
    page.wait_for_function("(() => { const s = window.lumboPractice.state(); return s && "
                           "s.patient && s.patient.phase === 'active'; })()", timeout=TIMEOUT_MS)
    expect(page.locator("#pp-items li[data-status=current]")).to_contain_text("Bend forward")
    page.wait_for_function("document.getElementById('angle').textContent !== '–'",
                           timeout=TIMEOUT_MS)
    first = page.locator("#angle").text_content()
    page.wait_for_function(f"document.getElementById('angle').textContent !== {first!r}",
                           timeout=TIMEOUT_MS)
    page.wait_for_function("Number(document.getElementById('reps').textContent) >= 1",
                           timeout=TIMEOUT_MS)
    expect(page.locator("#target-text")).to_contain_text("level 1")
    expect(page.locator("#pp-instructions")).to_contain_text("bend forward")
    page.screenshot(path=str(SHOTS / "practice_patient_live.png"))

    # 3. the therapist sets it to level 4 (feedback after the movement) while it runs: the
    # patient page follows at once (new level, no live guide), the decision is logged
    thera.select_option("#pt-level-flexion_to_target", "4")
    thera.fill("#pt-level-reason", "ready for feedback after the movement")
    thera.click("#pt-apply-flexion_to_target")
    expect(page.locator("#pp-items li[data-exercise=flexion_to_target] .pp-level")).to_have_text(
        "Level 4", timeout=TIMEOUT_MS)
    expect(page.locator("#pp-title")).to_contain_text("level 4", timeout=TIMEOUT_MS)
    expect(thera.locator("#pt-decisions")).to_contain_text("therapist_set", timeout=TIMEOUT_MS)
    expect(thera.locator("#pt-decisions")).to_contain_text("ready for feedback after the movement")
    page.wait_for_function("document.body.classList.contains('pp-hidden-live')",
                           timeout=TIMEOUT_MS)

    # 4. after a movement the patient estimates it before hearing the result
    answered = False
    for _ in range(6):  # a prompt lapses when the next movement starts: answer one in time
        page.wait_for_selector("#pp-estimate:not([hidden])", state="visible", timeout=TIMEOUT_MS)
        page.locator("#pp-estimate button[data-kind=on_target]").click(timeout=TIMEOUT_MS)
        page.wait_for_function(
            "(() => { const s = window.lumboPractice.state(); return (s && s.estimates && "
            "s.estimates.answered >= 1) || !document.getElementById('pp-estimate').hidden; })()",
            timeout=TIMEOUT_MS)
        answered = page.evaluate("window.lumboPractice.state().estimates.answered >= 1")
        if answered:
            break
    assert answered, "no self-estimate was answered in time"
    expect(page.locator("#pp-cue")).not_to_have_text("", timeout=TIMEOUT_MS)
    expect(thera.locator("#pt-events")).to_contain_text("Self-estimate rep", timeout=TIMEOUT_MS)
    page.screenshot(path=str(SHOTS / "practice_patient_feedback.png"))
    page.wait_for_selector("#pp-estimate:not([hidden])", state="visible", timeout=TIMEOUT_MS)
    page.screenshot(path=str(SHOTS / "practice_patient_estimate.png"))  # the next prompt
    thera.screenshot(path=str(SHOTS / "practice_therapist.png"), full_page=True)
    with httpx.Client(base_url=srv.url, timeout=30) as http:
        http.post("/api/session/stop", headers=access.patient_headers)
    assert errors == []
