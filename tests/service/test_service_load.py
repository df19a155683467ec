"""Load and failure test on 127.0.0.1, bounded: 20 concurrent submissions through HTTP, a worker
killed mid-run, the whole service killed mid-queue and restarted; every request is done, each run
by the TEST ONLY fake runner completes exactly once, nothing is left half-written."""

import re
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from service_support import HOME, PASSWORD, free_port, start, stop, wait_for_port

SUBMISSIONS = 20
FAKE = {"FAKE_RUN_S": "0.8"}


def sign_in(base: str, username: str) -> requests.Session:
    session = requests.Session()
    session.get(f"{base}/accounts/login/")
    response = session.post(f"{base}/accounts/login/", data={
        "username": username, "password": PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{base}/accounts/login/"})
    assert response.url == f"{base}/", "sign-in failed"
    return session


def submit(base: str, cookies, images) -> str:
    """Submit one request in a session of its own with a signed-in session's cookies; returns its id."""
    session = requests.Session()
    session.cookies.update(cookies)
    response = session.post(f"{base}/requests/new/", data={
        "bone": "femur", "side": "right", "body_mass_kg": "80", "csrfmiddlewaretoken": cookies["csrftoken"]},
        files={"ct": ("ct.nii.gz", images[0]), "labels": ("labels.nii.gz", images[1])},
        headers={"Referer": f"{base}/requests/new/"}, allow_redirects=False)
    assert response.status_code == 302, response.text[-500:]
    return re.fullmatch(r"/requests/([0-9a-f-]{36})/", response.headers["Location"]).group(1)


def wait_until(condition, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(what)


@pytest.mark.timeout(240)
def test_concurrent_submissions_survive_a_killed_worker_and_a_restart(django_db, make_user, small_images):
    from bonefe.service.models import RiskRequest

    user = make_user()
    ledger = HOME / "fake-runs.txt"
    ledger.unlink(missing_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = HOME / "load-test.log"
    server = start("serve", "--port", str(port), "--workers", "0", env=FAKE, log=log)
    workers = [start("worker", "--poll", "0.2", env=FAKE, log=log) for _ in range(2)]
    try:
        wait_for_port(port)
        t0 = time.monotonic()
        with ThreadPoolExecutor(SUBMISSIONS) as pool:
            cookies = sign_in(base, user.username).cookies.get_dict()
            ids = list(pool.map(lambda _: submit(base, cookies, small_images), range(SUBMISSIONS)))
        assert len(set(ids)) == SUBMISSIONS
        print(f"{SUBMISSIONS} submissions in {time.monotonic() - t0:.1f} s")
        mine = RiskRequest.objects.filter(pk__in=ids)

        # A worker killed while it runs a request: its lease lapses and another worker takes it again.
        # On a slow machine the run may end before the kill lands: then kill another live worker's run
        # (the killed worker's request still shows as running until its lease lapses).
        def run_of_a_live_worker():
            runs = mine.filter(status__in=["meshing", "solving", "report"]).exclude(stage="")
            return next(((r, w) for r in runs for w in workers if r.worker.endswith(f":{w.pid}")), None)

        for _ in range(5):
            running, victim = wait_until(run_of_a_live_worker, 30, "no run started")
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            workers.remove(victim)
            workers.append(start("worker", "--poll", "0.2", env=FAKE, log=log))
            ledger_lines = ledger.read_text(encoding="utf-8").splitlines()
            if (str(running.pk), "end") not in {tuple(line.split()) for line in ledger_lines}:
                break
        else:
            pytest.fail("every killed worker had finished its run first: the test did not test a kill")

        # The whole service killed mid-queue, then started again.
        wait_until(lambda: mine.filter(status="done").count() >= 5, 60, "fewer than 5 done")
        for process in [server, *workers]:
            stop(process, kill=True)
        left = mine.exclude(status="done").count()
        assert left > 0, "the queue emptied before the restart: the test did not test a restart"
        server = start("serve", "--port", str(port), "--workers", "2", env=FAKE, log=log)
        workers = []
        wait_for_port(port)
        wait_until(lambda: mine.filter(status="done").count() == SUBMISSIONS, 120,
                   f"not every request done: {Counter(mine.values_list('status', flat=True))}")

        print(f"all done {time.monotonic() - t0:.1f} s after the first submission")
        events = Counter(tuple(line.split()) for line in ledger.read_text(encoding="utf-8").splitlines())
        ends = {i: events[(i, "end")] for i in ids}
        assert set(ends.values()) == {1}, f"a request's run completed more or less than once: {ends}"
        assert RiskRequest.objects.get(pk=running.pk).attempts >= 2
        assert events[(str(running.pk), "start")] >= 2
        session = sign_in(base, user.username)
        for i in ids:
            assert session.get(f"{base}/requests/{i}/report.pdf").content.startswith(b"%PDF")
        leftovers = [p for p in (HOME / "requests").rglob("*") if p.name.startswith((".partial", "attempt-", "old-"))]
        assert leftovers == []
    finally:
        for process in [server, *workers]:
            stop(process)
