"""Signing in and out in a real headless Chromium (Debian's, driven by Playwright), against a
real uvicorn: a page without a sign-in goes to the login page, errors are said in words and
focused, the keyboard alone signs in, the page comes back, Sign out returns to the login page,
and a sign-in that ends under an open live page sends that page to the login page. Waits are on DOM and
URL conditions only."""

from __future__ import annotations


import re

import pytest

from api.settings import Settings

from browser_support import SHOTS, TIMEOUT_MS  # noqa: E402,F401

pytestmark = pytest.mark.browser

PASSWORD = "a patient's long password"



def test_sign_in_with_the_keyboard_sign_out_and_session_end(browser, live_server) -> None:
    from playwright.sync_api import expect

    srv = live_server(Settings(default_level=6))
    auth = srv.app.state.auth
    patient = auth.store.by_username("test-patient")
    auth.set_password(patient, PASSWORD)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.goto(srv.url + "/")  # not signed in: to the login page, and back afterwards
    page.wait_for_url("**/login?next=%2F", timeout=TIMEOUT_MS)
    expect(page.locator("#login-note")).to_contain_text("sign in", ignore_case=True)

    # nothing typed: each field says what is missing, focus goes to the first
    page.click("#submit")
    expect(page.locator("#username-error")).to_have_text("Enter your username.")
    expect(page.locator("#username")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#username")).to_be_focused()

    # a wrong password: a clear alert, focused, the password field emptied
    page.fill("#username", "test-patient")
    page.fill("#password", "not the password")
    page.press("#password", "Enter")
    expect(page.locator("#login-error")).to_contain_text("Wrong username or password",
                                                          timeout=TIMEOUT_MS)
    expect(page.locator("#login-error")).to_be_focused()
    expect(page.locator("#password")).to_have_value("")

    # the keyboard alone: Tab from the username to the password, Enter submits
    page.focus("#username")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(srv.url + "/", timeout=TIMEOUT_MS)
    expect(page.locator("#whoami")).to_have_text("Test Patient", timeout=TIMEOUT_MS)
    expect(page.locator("#idle")).to_contain_text("Press Start", timeout=TIMEOUT_MS)
    cookie = next(c for c in page.context.cookies() if c["name"] == "lumbo_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # Sign out: back to the login page; the old page's API is closed to this browser
    page.click("#logout")
    page.wait_for_url("**/login", timeout=TIMEOUT_MS)
    assert not [c for c in page.context.cookies() if c["name"] == "lumbo_session"]

    # a sign-in that ends while the page is open (here: the therapist disables the patient)
    page.goto(srv.login_url("/"))
    expect(page.locator("#conn")).not_to_have_attribute("data-state", "connecting",
                                                        timeout=TIMEOUT_MS)
    # the live WebSocket is closed at once (1008); the page asks the API, which answers 401,
    # and goes to the login page by itself
    auth.set_active(auth.store.by_username("test-patient"), False)
    # polls the URL: an aborted navigation on the way does not fail the wait
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"), timeout=TIMEOUT_MS)
    assert errors == []


def test_therapist_page_signs_out(browser, live_server) -> None:
    from playwright.sync_api import expect

    srv = live_server(Settings())
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(srv.login_url("/therapist", role="therapist"))
    expect(page.locator("#whoami")).to_have_text("Test Therapist", timeout=TIMEOUT_MS)
    page.locator("#logout").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/login", timeout=TIMEOUT_MS)
    page.goto(srv.url + "/therapist")
    page.wait_for_url("**/login?next=%2Ftherapist", timeout=TIMEOUT_MS)
