"""Workers: claim a queued request from the database, run its case file, record progress and result.

The database is the source of truth. A claim is a compare-and-swap on the request's lease token,
so two workers never run the same request; a running worker renews its lease every
LEASE_SECONDS/4 (heartbeat) and a request whose lease lapsed (its worker was killed) is claimed
again. Each attempt writes into its own folder and publishes it as `report/` only while it still
holds the lease, so a late zombie run can never overwrite a newer one.
"""

import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import yaml
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from bonefe.service.models import FINISHED, RUNNING, Bone, RiskRequest, Status

STAGE_STATUS = {"read images": Status.MESHING, "anatomy": Status.MESHING, "mesh": Status.MESHING,
                "material": Status.SOLVING, "solve and assess": Status.SOLVING, "write outputs": Status.SOLVING,
                "uncertainty": Status.SOLVING, "report": Status.REPORT}
"""Which service status each stage of `bonefe run` (bonefe.pipeline.STAGES) belongs to."""
STAGE_LINE = re.compile(r"\[(\d+)/(\d+)\] ([a-z ]+?) \.\.\.")
ERROR_PREFIX = "bonefe: error: "  # how `bonefe run` prints a user mistake (bonefe.cli.main)
MAX_ATTEMPTS = 3  # claims of one request whose workers all died before it is marked failed


def request_dir(request: RiskRequest) -> Path:
    return settings.REQUESTS_DIR / str(request.id)


def write_case(request: RiskRequest) -> Path:
    """The case file of a request (bonefe.case format, as cases/*.yaml) next to its de-identified
    images: `site:` the bone; the femur and humerus with the patient's side (and Mirels pain), the
    vertebra with `level:` and the vertebral density-modulus law (as cases/spine-l1-lytic.yaml).
    Only the model's inputs: nothing that identifies the patient."""
    folder = request_dir(request)
    patient = {"body_mass_kg": request.body_mass_kg}
    site = {"site": request.bone}
    material = {}
    if request.bone == Bone.VERTEBRA:
        site["level"] = request.level
        material = {"material": {"law": "morgan2003_vertebra"}}
    else:
        patient["side"] = request.side
        if request.pain:
            patient["pain"] = request.pain
    case = {"name": "request", **site, "ct": "ct.nii.gz", "labels": "labels.nii.gz", "patient": patient,
            "label_values": {"bone": 1, "lytic": 2, "blastic": 3}, "mesh": {"size_mm": settings.MESH_MM}, **material}
    path = folder / "case.yaml"
    path.write_text(yaml.safe_dump(case, sort_keys=False), encoding="utf-8")
    return path


def claim(worker: str) -> RiskRequest | None:
    """Take the oldest queued request, or a running one whose lease lapsed; None when there is none."""
    now = timezone.now()
    RiskRequest.objects.filter(status__in=RUNNING, lease_until__lt=now, attempts__gte=MAX_ATTEMPTS).update(
        status=Status.FAILED, lease=None, lease_until=None, finished=now,
        error=f"the run stopped {MAX_ATTEMPTS} times without finishing; an engineer can read its log and rerun it")
    waiting = RiskRequest.objects.filter(Q(status=Status.QUEUED) | Q(status__in=RUNNING, lease_until__lt=now))
    for candidate in waiting.order_by("created")[:20]:
        token = uuid.uuid4()
        won = RiskRequest.objects.filter(pk=candidate.pk, lease=candidate.lease, status=candidate.status).update(
            lease=token, lease_until=now + timedelta(seconds=settings.LEASE_SECONDS), worker=worker,
            status=Status.MESHING, stage="", progress=0.0, error="", attempts=candidate.attempts + 1)
        if won:
            return RiskRequest.objects.get(pk=candidate.pk)
    return None


def _held(request: RiskRequest):
    """The request's rows while this claim still holds it (use .update on it)."""
    return RiskRequest.objects.filter(pk=request.pk, lease=request.lease, status__in=RUNNING)


def die_with_parent():
    """Child process setup: killed when its worker dies (Linux PR_SET_PDEATHSIG), in its own group."""
    os.setsid()
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def launcher() -> list[str]:
    """The command words before the run command: mpirun for more than one rank, inside a Slurm
    allocation of one node when BONEFE_SERVICE_LAUNCHER is slurm (srun waits for the run, passes its
    output through and forwards the worker's SIGTERM on cancel; the request folder must be on a file
    system the node shares)."""
    mpi = ["mpirun", "-n", str(settings.RANKS)] if settings.RANKS > 1 else []
    if settings.LAUNCHER == "slurm":
        return ["srun", "--job-name=bonefe-request", "--nodes=1", "--ntasks=1", f"--cpus-per-task={settings.RANKS}",
                "--quiet", *settings.SLURM_OPTIONS, *mpi]
    return mpi


def run(request: RiskRequest) -> None:
    """Run a claimed request to its end: done, failed (with the run's one-line message) or lost."""
    folder = request_dir(request)
    attempt = folder / f"attempt-{request.lease}"
    stale = [*folder.glob("attempt-*"), *folder.glob("old-*")]  # left by claims that lapsed: their workers died
    finished = next((a for a in stale if (a / "report" / "report.json").is_file()), None)
    for leftover in stale:
        if leftover != finished:
            shutil.rmtree(leftover, ignore_errors=True)
    if finished is not None:  # the run had finished (bonefe run publishes its folder only on success)
        return _finish(request, 0, finished)
    case = write_case(request)
    command = [*launcher(), *settings.RUN_COMMAND, str(case), "--output", str(attempt / "report")]
    attempt.mkdir()
    with open(attempt / "run.log", "wb") as log:
        try:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder,
                                       preexec_fn=die_with_parent)
        except OSError as error:  # e.g. mpirun missing: a set-up problem, not the request's
            log.write(f"cannot start {command[0]}: {error.strerror}\n".encode())
            log.close()
            return _finish(request, 127, attempt)
        stop = threading.Event()
        lost = threading.Event()
        beat = threading.Thread(target=_heartbeat, args=(request, process, attempt / "run.log", stop, lost))
        beat.start()
        code = process.wait()
        stop.set()
        beat.join()
    if lost.is_set():
        shutil.rmtree(attempt, ignore_errors=True)  # cancelled, or the lease went to another worker
        return
    _finish(request, code, attempt)


def _heartbeat(request, process, log_path: Path, stop: threading.Event, lost: threading.Event) -> None:
    """Renew the lease and copy the run's stage into the database until the run ends or is taken away."""
    from django.db import connection

    try:
        while not stop.wait(min(1.0, settings.LEASE_SECONDS / 4)):
            fields = {"lease_until": timezone.now() + timedelta(seconds=settings.LEASE_SECONDS)}
            fields.update(_stage(log_path.read_text(errors="replace", encoding="utf-8")))
            if not _held(request).update(**fields):
                lost.set()
                os.killpg(process.pid, signal.SIGKILL)
                return
    finally:
        connection.close()


def _stage(log: str) -> dict:
    """Status, stage name and progress (0..1) from the last stage line of a `bonefe run` log."""
    lines = STAGE_LINE.findall(log)
    if not lines:
        return {}
    number, total, name = lines[-1]
    return {"status": STAGE_STATUS.get(name, Status.SOLVING), "stage": name,
            "progress": (int(number) - 1) / int(total)}


def _finish(request: RiskRequest, code: int, attempt: Path) -> None:
    folder = request_dir(request)
    log = (attempt / "run.log").read_text(errors="replace", encoding="utf-8")
    shutil.copyfile(attempt / "run.log", folder / "run.log")
    report = attempt / "report" / "report.json"
    if code == 0 and report.is_file():
        results = json.loads(report.read_text(encoding="utf-8"))
        final = folder / "report"
        old = folder / f"old-{request.lease}"
        if final.exists():
            final.rename(old)
        (attempt / "report").rename(final)
        won = _held(request).update(status=Status.DONE, progress=1.0, stage="", finished=timezone.now(),
                                    lease_until=None, **_summary(results))
        shutil.rmtree(old, ignore_errors=True)
        if not won:
            shutil.rmtree(final, ignore_errors=True)
    else:
        error = failure_message(code, log).replace(f"{folder}/", "")  # the clinician needs no server paths
        _held(request).update(status=Status.FAILED, error=error, finished=timezone.now(), lease_until=None)
    shutil.rmtree(attempt, ignore_errors=True)


def _summary(results: dict) -> dict:
    """The numbers the request list shows (report.json's top-level failure load in BW, risk category)."""
    load = results.get("failure_load_bw")
    return {"failure_load_bw": float(load) if isinstance(load, (int, float)) else None,
            "risk_category": str(results.get("risk_category") or "")[:20]}


def failure_message(code: int, log: str) -> str:
    """The run's one-line user error, or a plain sentence for an unexpected stop."""
    for line in reversed(log.splitlines()):
        if ERROR_PREFIX in line:
            return line.split(ERROR_PREFIX, 1)[1].strip()
    return f"the run stopped unexpectedly (exit code {code}); an engineer can read its log"


def sweep() -> None:
    """Remove the attempt folders of finished requests (a worker killed after recording its result
    but before cleaning up leaves one behind); those of running requests are for `run` to judge."""
    for attempt in [*settings.REQUESTS_DIR.glob("*/attempt-*"), *settings.REQUESTS_DIR.glob("*/old-*")]:
        if RiskRequest.objects.filter(pk=attempt.parent.name, status__in=FINISHED).exists():
            shutil.rmtree(attempt, ignore_errors=True)


def serve_forever(poll_s: float = 1.0, once: bool = False) -> None:
    """Claim and run requests one after another; with once, stop when the queue is empty."""
    from django.db import close_old_connections

    name = f"{socket.gethostname()}:{os.getpid()}"
    sweep()
    while True:
        close_old_connections()
        request = claim(name)
        if request is not None:
            run(request)
        elif once:
            return
        else:
            time.sleep(poll_s)
