"""The therapist dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright) against a real uvicorn: all live sessions at a glance with two patients of the same
therapist practising at once (a third, another therapist's, must not appear), a tile opening the
detailed live view, the history plots of stored sessions, the CSV download, the printable report
and its PDF, adding, renaming and signing in a patient from the page, and the patient's own
progress over the weeks on the patient page.

The history is seeded through the real code paths before the server starts, in the same data
directory (tests/history_support.py): two simulated sessions imported with dates one and two
weeks ago and analysed offline, with the patient's pain reports, and today an unpaced
single-exercise session. Waits are on DOM conditions and on sessions ending, never on time.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth.middleware import COOKIE_NAME
from api.settings import Settings
from browser_support import SHOTS, TIMEOUT_MS
from history_support import days_ago, import_simulated, run_flexion

pytestmark = pytest.mark.browser

LIVE = {"script": "demo", "loop": True, "realtime": True, "speed": 1.0}


def seed(data_dir: Path) -> dict[str, object]:
    """Accounts and history in `data_dir`, made by an app of their own that is closed before
    the live server opens the same directory."""
    app = create_app(Settings(data_dir=data_dir))
    auth = app.state.auth
    t = auth.create_therapist("test-therapist", None, "Test Therapist")
    p = auth.create_patient("test-patient", t.id, None, "Test Patient")
    second = auth.create_patient("second-patient", t.id, None, "Second Patient")
    other_t = auth.create_therapist("other-therapist", None, "Other Therapist")
    other_p = auth.create_patient("other-patient", other_t.id, None, "Olga Other")
    ids = []
    with TestClient(app, base_url="http://testserver") as client:
        store = app.state.recordings.store
        p_cookie = {"Cookie": f"{COOKIE_NAME}={auth.open_session(p)[0]}",
                    "Origin": "http://testserver"}
        for days, cal, pain in ((14, 60.0, 6), (7, 70.0, 5)):
            sid = import_simulated(store, p.id, started_at=days_ago(days), seed=days,
                                   calibration_deg=cal, amplitude_deg=cal / 2)
            r = client.post(f"/api/recordings/{sid}/reports", headers=p_cookie,
                            json={"kind": "pain_nrs_before", "value": pain})
            assert r.status_code == 201, r.text
            ids.append(sid)
        t_cookie = {"Cookie": f"{COOKIE_NAME}={auth.open_session(t)[0]}",
                    "Origin": "http://testserver"}
        ids.append(run_flexion(client, t_cookie, p.id, n_reps=3))
        client.portal.call(app.state.manager.by_patient[p.id].wait)
        client.portal.call(app.state.recordings.wait_closed)
    auth.close()
    return {"patient": p, "second": second, "other_t": other_t, "other_p": other_p, "ids": ids}


def pdf_title(pdf: bytes) -> str:
    """The document title Chromium writes into the PDF's Info dictionary (UTF-16BE hex)."""
    m = re.search(rb"/Title\s*<FEFF([0-9A-Fa-f]+)>", pdf)
    if m:
        return bytes.fromhex(m.group(1).decode()).decode("utf-16-be")
    m = re.search(rb"/Title\s*\(([^)]*)\)", pdf)
    return m.group(1).decode("latin-1") if m else ""


def test_dashboard_glance_history_report_and_patients(browser, live_server, tmp_path) -> None:
    from playwright.sync_api import expect

    seeded = seed(tmp_path / "data")
    srv = live_server(Settings(data_dir=tmp_path / "data"))
    auth = srv.app.state.auth
    patient, second, ids = seeded["patient"], seeded["second"], seeded["ids"]
    assert srv.accounts.patient.id == patient.id  # the fixture signed in the seeded accounts
    mine = {"Cookie": f"{COOKIE_NAME}={srv.accounts.therapist_token}", "Origin": srv.url}
    other = {"Cookie": f"{COOKIE_NAME}={auth.open_session(seeded['other_t'])[0]}",
             "Origin": srv.url}
    with httpx.Client(base_url=srv.url, timeout=30) as http:
        for pid, headers in ((patient.id, mine), (second.id, mine),
                             (seeded["other_p"].id, other)):
            r = http.post(f"/api/session/start?patient_id={pid}", json=LIVE, headers=headers)
            assert r.status_code == 200, r.text

    ctx = browser.new_context(viewport={"width": 1366, "height": 1000}, accept_downloads=True)
    ctx.add_cookies([{"name": COOKIE_NAME, "value": srv.accounts.therapist_token,
                      "url": srv.url}])
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    SHOTS.mkdir(parents=True, exist_ok=True)

    # 1. at a glance: both of this therapist's live sessions, updating; never the other's
    page.goto(srv.url + "/therapist")
    tiles = page.locator("#glance-tiles a.tile")
    expect(tiles).to_have_count(2, timeout=TIMEOUT_MS)
    expect(page.locator("#glance-tiles")).to_contain_text("Test Patient")
    expect(page.locator("#glance-tiles")).to_contain_text("Second Patient")
    expect(page.locator("#live-detail")).to_be_hidden()  # two patients, none chosen yet
    expect(page.locator("#choose-patient")).to_be_visible()
    first = page.evaluate("window.lumboGlance.messages")
    page.wait_for_function(f"window.lumboGlance.messages >= {first + 8}", timeout=TIMEOUT_MS)
    tile = page.locator("#glance-tiles a.tile", has_text="Test Patient")
    page.wait_for_function("""() => [...document.querySelectorAll('#glance-tiles .tile')]
        .every((t) => t.querySelector('[data-angle=flexion_deg]').textContent !== '–')""",
                           timeout=TIMEOUT_MS)
    angle = tile.locator("[data-angle=flexion_deg]").text_content()
    page.wait_for_function(
        """(a) => [...document.querySelectorAll('#glance-tiles .tile')].some((t) =>
            t.dataset.patient === a[0] && t.querySelector('[data-angle=flexion_deg]')
            .textContent !== a[1])""", arg=[patient.id, angle], timeout=TIMEOUT_MS)
    expect(tile).to_contain_text("Upper: ✔ connected")
    expect(tile.locator(".tile-state")).to_contain_text(re.compile("calibrating|running"))
    assert "Olga" not in page.locator("#glance").text_content()
    assert "Olga" not in page.locator("#patients").text_content()
    page.screenshot(path=str(SHOTS / "dashboard_glance.png"), full_page=True)

    # 2. a tile opens the patient's detailed live view (keyboard: it is a link)
    tile.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"patient_id=" + re.escape(patient.id)), timeout=TIMEOUT_MS)
    expect(page.locator("#live-detail")).to_be_visible()
    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=TIMEOUT_MS)

    # 3. the history of the stored sessions: plots and tables
    expect(page.locator("#history")).to_have_attribute("data-loaded", re.compile("[1-9]"),
                                                       timeout=TIMEOUT_MS)
    expect(page.locator("#history-patient")).to_have_text("Test Patient")
    for sid in ids:
        expect(page.locator(f"#hp-sessions tr[data-session='{sid}']")).to_have_count(1)
    rom = page.locator("#hp-rom")
    assert int(rom.get_attribute("data-points")) >= 2 * len(ids)  # furthest and calibration
    assert rom.locator(".lplot-point").count() >= 2 * len(ids)
    assert page.locator("#hp-pain .lplot-point").count() >= 2  # the two reported ratings
    assert page.locator("#hp-error .lplot-point").count() >= 1  # the single exercise's error
    expect(page.locator("#history-summary")).to_contain_text("Furthest forward bend per week")
    page.locator("#history").screenshot(path=str(SHOTS / "dashboard_history.png"))

    # 4. CSV download: the browser saves the file the server makes
    with page.expect_download(timeout=TIMEOUT_MS) as dl:
        page.click("#history-csv")
    download = dl.value
    assert download.suggested_filename == "lumbo-history-test-patient-sessions.csv"
    text = Path(download.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["session_id"] for r in rows][:3] == ids
    assert float(rows[0]["peak_flexion_deg"]) < float(rows[1]["peak_flexion_deg"]) < float(
        rows[2]["peak_flexion_deg"])  # the simulated patient bent further each week
    assert [r["pain_before_nrs_0_10"] for r in rows[:2]] == ["6", "5"]
    assert rows[2]["exercises_and_levels"] == "flexion_classic=1"

    # 5. the printable report and its PDF
    page.click("#history-report")
    page.wait_for_url(re.compile(r"/therapist/report/"), timeout=TIMEOUT_MS)
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=TIMEOUT_MS)
    expect(page.locator("#r-name")).to_have_text("Test Patient")
    expect(page.locator("#r-therapist")).to_have_text("Test Therapist")
    for sid in ids:
        expect(page.locator(f"#r-sessions tr[data-session='{sid}']")).to_have_count(1)
    assert page.locator("#r-plots .lplot").count() >= 5
    expect(page.locator("#r-program")).to_contain_text("Bend forward to the target and back")
    page.emulate_media(media="print")
    expect(page.locator("#report-print")).to_be_hidden()  # the print stylesheet hides controls
    pdf = page.pdf(format="A4", print_background=True)
    (SHOTS / "dashboard_report.pdf").write_bytes(pdf)
    assert pdf.startswith(b"%PDF-") and len(pdf) > 20_000
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 2
    assert "Test Patient" in pdf_title(pdf)
    page.emulate_media(media="screen")

    # 6. patient management: add, sign in by link, rename
    page.goto(srv.url + f"/therapist?patient_id={patient.id}#patients")
    expect(page.locator("#patients-table tr[data-patient]")).to_have_count(2, timeout=TIMEOUT_MS)
    page.fill("#pa-username", "nora-new")
    page.fill("#pa-display", "Nora New")
    page.locator("#pa-display").press("Enter")
    expect(page.locator("#patient-add-msg")).to_contain_text("Added Nora New", timeout=TIMEOUT_MS)
    row = page.locator("#patients-table tr", has_text="nora-new")
    expect(row).to_have_count(1)
    row.locator("button[data-action=link]").click()
    expect(page.locator("#patients-link-url")).to_have_value(
        re.compile(re.escape(srv.url) + r"/login/link\?token=\S+"), timeout=TIMEOUT_MS)
    row.locator("button[data-action=rename]").click()
    page.locator("input.p-rename").fill("Nora Renamed")
    page.locator("input.p-rename").press("Enter")
    expect(page.locator("#patients-table tr", has_text="nora-new")).to_contain_text(
        "Nora Renamed", timeout=TIMEOUT_MS)
    nora = auth.store.by_username("nora-new")
    assert nora is not None and nora.display_name == "Nora Renamed"
    assert nora.therapist_id == srv.accounts.therapist.id and nora.role == "patient"
    page.screenshot(path=str(SHOTS / "dashboard_patients.png"), full_page=True)

    # 7. the patient's own progress over the weeks, on the patient page
    pctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pctx.add_cookies([{"name": COOKIE_NAME, "value": srv.accounts.patient_token,
                       "url": srv.url}])
    ppage = pctx.new_page()
    ppage.on("pageerror", lambda e: errors.append(f"patient: {e}"))
    ppage.goto(srv.url + "/")
    progress = ppage.locator("#ph-progress")
    expect(progress).to_have_attribute("data-loaded", re.compile("[1-9]"), timeout=TIMEOUT_MS)
    ppage.locator("#ph-progress > summary").click()
    assert ppage.locator("#ph-rom .lplot-point").count() == 3  # weeks 0, 1 and 2
    expect(progress).to_contain_text("Your forward bend")
    progress.screenshot(path=str(SHOTS / "patient_progress.png"))
    pctx.close()
    ctx.close()

    with httpx.Client(base_url=srv.url, timeout=30) as http:
        for pid in (patient.id, second.id):
            http.post(f"/api/session/stop?patient_id={pid}", headers=mine)
    assert errors == []
