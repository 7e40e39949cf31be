"""The patient page's Sensors step and the sensor-health warnings in a real headless Chromium,
against the real service on the simulated BlueZ: scan, assign upper and lower from the keyboard,
start a BLE session; a lost lower sensor shows as a banner on the patient page and as a warning
on the therapist page. Waits are on DOM conditions only."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser_support import ARGS, CHROMIUM, SHOTS, TIMEOUT_MS, unavailable

from api.settings import Settings
from sensors.simbluez import SimBluez
from sensors.simbluez.demo import peripheral_spec

pytestmark = pytest.mark.browser

UPPER, LOWER = "C0:1D:B0:00:00:31", "C0:1D:B0:00:00:32"



@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("the playwright Python package is not installed")
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        unavailable(f"Chromium not found at {CHROMIUM} (Debian package 'chromium')")
    async with async_playwright() as pw:
        try:
            b = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        except Exception as exc:  # noqa: BLE001 - report why the browser did not start
            unavailable(f"Chromium did not start: {exc}")
        yield b
        await b.close()


async def test_sensors_step_assigns_roles_by_keyboard_and_health_shows_a_lost_sensor(
        browser, live_server, fake: SimBluez, tmp_path: Path) -> None:
    from playwright.async_api import expect

    for family, address in (("witmotion", UPPER), ("movesense", LOWER)):
        await fake.call("add_device", peripheral=peripheral_spec(family),
                        kwargs={"address": address}, address=address,
                        role="upper" if address == UPPER else "lower")
    await fake.call("start_streaming", kind="synthetic", rate_hz=100.0)
    srv = live_server(Settings(default_source="ble", data_dir=tmp_path))

    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(srv.login_url("/"))
    await expect(page.locator("#idle")).to_contain_text("Press Start", timeout=TIMEOUT_MS)
    await expect(page.locator("#sensors-btn")).to_be_visible()  # the Sensors step, any time idle
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / "patient_idle_ble.png"))

    # Start on a BLE server opens the Sensors step, which scans at once
    await page.locator("#start").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#setup")).to_be_visible(timeout=TIMEOUT_MS)
    await expect(page.locator("#setup-title")).to_have_text("Sensors")
    rows = page.locator("#sensor-list li")
    await expect(rows).to_have_count(2, timeout=TIMEOUT_MS)
    await expect(page.locator("#scan-status")).to_contain_text("Found 2", timeout=TIMEOUT_MS)
    await expect(page.locator("#sensor-list")).to_contain_text("WitMotion")
    await expect(page.locator("#sensor-list")).to_contain_text("dBm")
    await expect(page.locator("#setup-start")).to_be_disabled()
    assert await page.locator("#setup figure svg title").text_content()  # the placement picture

    # keyboard only: Tab to a role button, Enter; the targets are large
    async def choose(address: str, role: str) -> None:
        button = page.locator(f'#sensor-list button[data-address="{address}"][data-role="{role}"]')
        box = await button.bounding_box()
        assert box is not None and box["height"] >= 44 and box["width"] >= 44
        for _ in range(40):
            if await button.evaluate("b => b === document.activeElement"):
                break
            await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")
        await expect(button).to_have_attribute("aria-pressed", "true")

    await choose(UPPER, "upper")
    await choose(LOWER, "lower")
    await expect(page.locator("#slot-upper")).not_to_have_text("not chosen")
    await expect(page.locator("#setup-start")).to_be_enabled()
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / "patient_sensors.png"))
    await page.locator("#setup-start").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#setup")).to_be_hidden(timeout=TIMEOUT_MS)
    await expect(page.locator("#stop")).to_be_enabled(timeout=TIMEOUT_MS)

    async with httpx.AsyncClient(base_url=srv.url, cookies=srv.cookies,
                                 headers=srv.headers) as http:
        st = (await http.get("/api/session")).json()
        assert st["source"] == "ble"
        assert (st["sensors"]["upper"]["address"], st["sensors"]["lower"]["address"]) == (
            UPPER, LOWER)
        roles = (await http.get("/api/sensors/roles")).json()
        assert (roles["upper"]["address"], roles["lower"]["address"]) == (UPPER, LOWER)

    # both sensors stream: no banner; the lower one is lost and cannot come back at once
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live",
                                                          timeout=TIMEOUT_MS)
    await expect(page.locator("#sensor-banner")).to_be_hidden(timeout=TIMEOUT_MS)
    therapist = await browser.new_page(viewport={"width": 1280, "height": 1000})
    therapist.on("pageerror", lambda e: errors.append(str(e)))
    await therapist.goto(srv.login_url("/therapist", role="therapist"))
    await expect(therapist.locator("#health")).to_contain_text("streaming", timeout=TIMEOUT_MS)
    await fake.call("fail_connect", address=LOWER, count=1000)
    await fake.call("drop_link", address=LOWER)
    banner = page.locator("#sensor-banner")
    await expect(banner).to_be_visible(timeout=TIMEOUT_MS)
    await expect(banner).to_contain_text("Lower sensor lost — reconnecting…")
    await page.screenshot(path=str(SHOTS / "patient_sensor_lost.png"))
    warning = therapist.locator("#sensor-warning")
    await expect(warning).to_be_visible(timeout=TIMEOUT_MS)
    await expect(warning).to_contain_text("Lower sensor (S2) lost – reconnecting")
    await expect(therapist.locator("#health")).to_contain_text("reconnecting")
    await therapist.screenshot(path=str(SHOTS / "therapist_sensor_lost.png"), full_page=True)

    await page.click("#stop")
    await expect(page.locator("#idle")).to_contain_text("stopped", timeout=TIMEOUT_MS)
    await expect(banner).to_be_hidden()
    assert errors == []
