"""Workers in-process: a run's user error reaches the request page as its one line; cancelling a
running request kills its run and leaves nothing of it; the Slurm launcher runs a request in a
Slurm job (needs a Slurm controller: tests/slurm_support.py)."""

import threading
import time

import numpy as np
from django.test import override_settings

from service_support import HOME, leave_queued_only, nifti_bytes
from slurm_support import require_slurm
from test_service_security import client, upload


def test_run_error_is_shown_in_plain_words(django_db, make_user, small_images):
    """The real `bonefe run` on a label map without bone stops with its one-line BonefeError."""
    import sys

    from bonefe.service.models import RiskRequest
    from bonefe.service.worker import serve_forever

    user = make_user()
    c = client(user)
    no_bone = nifti_bytes(np.zeros((12, 12, 8), np.uint8))
    response = upload(c, ("ct.nii.gz", small_images[0]), ("labels.nii.gz", no_bone))
    assert response.status_code == 302
    leave_queued_only(user)
    with override_settings(RUN_COMMAND=[sys.executable, "-m", "bonefe.cli", "run"]):
        serve_forever(once=True)
    request = RiskRequest.objects.get(owner=user)
    assert request.status == "failed" and request.attempts == 1
    assert "\n" not in request.error and "Traceback" not in request.error and "label" in request.error
    page = c.get(response["Location"]).content.decode()
    assert 'id="run-error"' in page and "unexpectedly" not in page
    assert not (HOME / "requests" / str(request.pk) / "report").exists()
    assert request.error.startswith("labels.nii.gz: ")  # no server path


def test_cancel_kills_a_running_request(django_db, make_user, small_images, monkeypatch):
    from bonefe.service.models import RiskRequest
    from bonefe.service.worker import serve_forever

    monkeypatch.setenv("FAKE_RUN_S", "20")
    user, engineer = make_user(), make_user("engineer")
    response = upload(client(user), ("ct.nii.gz", small_images[0]), ("labels.nii.gz", small_images[1]))
    pk = response["Location"].split("/")[2]
    leave_queued_only(user)
    worker = threading.Thread(target=serve_forever, kwargs={"once": True})
    start = time.monotonic()
    worker.start()
    while RiskRequest.objects.get(pk=pk).stage == "":
        assert time.monotonic() - start < 30, "the run did not start"
        time.sleep(0.1)
    c = client(engineer)
    c.get(f"/requests/{pk}/")
    assert c.post(f"/requests/{pk}/cancel/", {"csrfmiddlewaretoken": c.cookies["csrftoken"].value}).status_code == 302
    worker.join(timeout=30)
    assert not worker.is_alive() and time.monotonic() - start < 20  # killed, not run to its end
    request = RiskRequest.objects.get(pk=pk)
    assert request.status == "cancelled"
    folder = HOME / "requests" / pk
    assert not (folder / "report").exists() and not list(folder.glob("attempt-*"))


def test_a_run_that_finished_before_its_worker_died_is_not_run_again(django_db, make_user):
    """The worker was killed after `bonefe run` published its report but before it recorded it: the
    next claim records that report instead of running again (the run command here would fail)."""
    import json
    import uuid
    from datetime import timedelta

    from django.utils import timezone

    from bonefe.service.models import RiskRequest
    from bonefe.service.worker import request_dir, serve_forever

    user = make_user()
    lease = uuid.uuid4()
    request = RiskRequest.objects.create(owner=user, side="left", body_mass_kg=70, ct_format="nifti",
                                         status="solving", lease=lease, attempts=1,
                                         lease_until=timezone.now() - timedelta(seconds=1))
    report = request_dir(request) / f"attempt-{lease}" / "report"
    report.mkdir(parents=True)
    (report / "report.json").write_text(json.dumps({"failure_load_bw": 4.2, "risk_category": "high"}), encoding="utf-8")
    (report.parent / "run.log").write_text("[6/6] report ... 1.0 s\n", encoding="utf-8")
    leave_queued_only(user)
    with override_settings(RUN_COMMAND=["false"]):
        serve_forever(once=True)
    request.refresh_from_db()
    assert (request.status, request.attempts, request.failure_load_bw, request.risk_category) == ("done", 2, 4.2, "high")
    assert (request_dir(request) / "report" / "report.json").is_file()
    assert list(request_dir(request).glob("attempt-*")) == []


def test_slurm_launcher_runs_the_request_in_a_slurm_job(django_db, make_user, small_images):
    """BONEFE_SERVICE_LAUNCHER=slurm: the run (the fake runner) sees a Slurm job id, and the request is done."""
    import json

    from bonefe.service.models import RiskRequest
    from bonefe.service.worker import request_dir, serve_forever

    require_slurm()
    user = make_user()
    upload(client(user), ("ct.nii.gz", small_images[0]), ("labels.nii.gz", small_images[1]))
    leave_queued_only(user)
    with override_settings(LAUNCHER="slurm"):
        serve_forever(once=True)
    request = RiskRequest.objects.get(owner=user)
    assert request.status == "done", request.error
    report = json.loads((request_dir(request) / "report" / "report.json").read_text(encoding="utf-8"))
    assert report["slurm_job"].isdigit()
