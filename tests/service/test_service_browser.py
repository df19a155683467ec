"""End to end in a real browser (Debian's chromium, headless, driven by Playwright): a clinician
signs in, uploads the phantom CT and label map, watches the status, opens the report and downloads
the PDF; an engineer sees the queue and the audit log. The run is real (`bonefe run`, coarse mesh).

Screenshots go to BONEFE_SERVICE_SCREENSHOTS (docs/images/ when regenerating the docs) or a
temporary folder."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service_support import HOME, PASSWORD, REPO, free_port, start, stop, wait_for_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium not installed")]
REAL_RUN = {"BONEFE_SERVICE_RUN_COMMAND": "", "BONEFE_SERVICE_MESH_MM": "10"}  # the real `bonefe run`


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    subprocess.run([sys.executable, "-m", "bonefe.cli", "phantom", "--out", str(out), "--lesion-site", "neck",
                    "--lesion-diameter", "20"], check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                   stdout=subprocess.DEVNULL)
    return out


def sign_in(page, base, username):
    page.goto(f"{base}/")
    assert "/accounts/login/" in page.url  # unauthenticated: sent to sign in
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


@pytest.mark.timeout(400)
def test_clinician_gets_a_report_in_the_browser(django_db, make_user, phantom, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from bonefe.service.models import AuditEvent, RiskRequest

    shots = Path(os.environ.get("BONEFE_SERVICE_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    clinician, engineer = make_user(), make_user("engineer")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start("serve", "--port", str(port), "--workers", "1", env=REAL_RUN, log=HOME / "browser-test.log")
    try:
        wait_for_port(port)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1100, "height": 800}, accept_downloads=True)
            page.goto(f"{base}/")
            page.screenshot(path=shots / "service-sign-in.png")
            sign_in(page, base, clinician.username)
            page.click("text=New request")
            page.select_option("#id_side", "left")
            page.fill("#id_body_mass_kg", "75")
            page.select_option("#id_pain", "moderate")
            page.select_option("#id_lesion_type", "lytic")
            page.set_input_files("#id_ct", phantom / "ct.nii.gz")
            page.set_input_files("#id_labels", phantom / "labels.nii.gz")
            page.screenshot(path=shots / "service-new-request.png", full_page=True)
            page.click("button[type=submit]")
            expect(page.locator("#status")).to_have_text(re.compile("queued|meshing|solving"))
            expect(page.locator("#progress")).to_be_visible()
            expect(page.locator("#status")).to_have_text("solving", timeout=120_000)  # after meshing
            page.screenshot(path=shots / "service-progress.png")
            expect(page.locator("#download-pdf")).to_be_visible(timeout=300_000)
            report = page.frame_locator("#report")
            expect(report.locator("h1").first).to_be_visible()
            page.screenshot(path=shots / "service-report.png")
            with page.expect_download() as download:
                page.click("#download-pdf")
            pdf = tmp_path / "report.pdf"
            download.value.save_as(pdf)
            assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 10_000

            pk = re.search(r"/requests/([0-9a-f-]{36})/", page.url).group(1)
            results = json.loads((HOME / "requests" / pk / "report" / "report.json").read_text(encoding="utf-8"))
            assert f"{results['failure_load_bw']:.1f} × body weight" in page.inner_text("main")

            engineer_page = browser.new_page(viewport={"width": 1100, "height": 700})
            sign_in(engineer_page, base, engineer.username)
            expect(engineer_page.locator("h1")).to_have_text("All requests (queue)")
            engineer_page.screenshot(path=shots / "service-queue.png")
            engineer_page.goto(f"{base}/requests/{pk}/log/")
            assert "read images ..." in engineer_page.inner_text("body")
            browser.close()
        # Django's ORM refuses to run inside Playwright's event loop: the database checks come after.
        request = RiskRequest.objects.get(pk=pk)
        assert request.owner == clinician and request.status == "done" and request.attempts == 1
        assert request.failure_load_bw == pytest.approx(results["failure_load_bw"])
        actions = sorted(AuditEvent.objects.filter(request=request).values_list("user__username", "action"))
        assert actions == sorted([(clinician.username, "create"), (clinician.username, "view"),
                                  (clinician.username, "download"), (engineer.username, "log")])
    finally:
        stop(server)
