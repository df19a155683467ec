"""Pages: request list, new request, request status and report, and the engineer's actions."""

import shutil
import uuid

import nibabel as nib
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from bonefe.service.access import get_request, is_engineer, require_engineer, visible_requests
from bonefe.service.forms import RequestForm
from bonefe.service.models import FINISHED, AuditEvent, RiskRequest, Status
from bonefe.service.uploads import UploadError, check_same_grid, ct_image, nifti_image
from bonefe.service.worker import request_dir

REPORT_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"  # the report is inert


@login_required
def request_list(request):
    requests = visible_requests(request.user).select_related("owner")
    return render(request, "service/list.html", {"requests": requests, "engineer": is_engineer(request.user)})


@login_required
def request_new(request):
    if request.method != "POST":
        return render(request, "service/new.html", {"form": RequestForm()})
    if int(request.META.get("CONTENT_LENGTH") or 0) > settings.MAX_UPLOAD_BYTES:  # before reading the body
        error = f"the upload is larger than {settings.MAX_UPLOAD_BYTES / 2**20:.3g} MB: refused. Nothing was saved."
        return render(request, "service/new.html", {"form": RequestForm(), "error": error})
    form = RequestForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            return redirect("request-detail", pk=_create(request.user, form).pk)
        except UploadError as error:
            form.add_error(None, f"{error}. Nothing was saved.")
    return render(request, "service/new.html", {"form": form})


def _create(user, form) -> RiskRequest:
    """Check and de-identify the images, write them, then record the request: all or nothing."""
    ct_file, labels_file = form.cleaned_data["ct"], form.cleaned_data["labels"]
    limit = settings.MAX_UPLOAD_BYTES
    ct = ct_image(ct_file.name, ct_file.read(), limit)
    labels = nifti_image(labels_file.name, labels_file.read(), limit, "label map")
    check_same_grid(ct, labels)
    risk_request = form.save(commit=False)
    risk_request.id, risk_request.owner = uuid.uuid4(), user
    risk_request.ct_format = "dicom" if ct_file.name.lower().endswith(".zip") else "nifti"
    final = request_dir(risk_request)
    partial = final.with_name(f".partial-{risk_request.id}")
    partial.mkdir(parents=True)
    try:
        nib.save(ct, partial / "ct.nii.gz")
        nib.save(labels, partial / "labels.nii.gz")
        partial.rename(final)
        with transaction.atomic():
            risk_request.save(force_insert=True)
            AuditEvent.objects.create(user=user, request=risk_request, action="create")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        raise
    return risk_request


@login_required
def request_detail(request, pk):
    risk_request = get_request(request.user, pk)
    return render(request, "service/detail.html", {
        "r": risk_request, "engineer": is_engineer(request.user), "finished": risk_request.status in FINISHED,
        "percent": round(100 * risk_request.progress), "audit": risk_request.audit.select_related("user")[:20]})


@login_required
def report_html(request, pk):
    response = HttpResponse(_report_file(request.user, pk, "report.html", "view").read_bytes(),
                            content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = REPORT_POLICY
    return response


@login_required
def report_pdf(request, pk):
    return FileResponse(_report_file(request.user, pk, "report.pdf", "download").open("rb"), as_attachment=True,
                        filename=f"bonefe-report-{pk}.pdf", content_type="application/pdf")


def _report_file(user, pk, name: str, action: str):
    """A file of a finished report the user may see (404 otherwise), the access written to the audit log."""
    risk_request = get_request(user, pk)
    if risk_request.status != Status.DONE:
        raise Http404("the report is not ready")
    path = request_dir(risk_request) / "report" / name
    if not path.is_file():  # e.g. a report written before its site had a PDF
        raise Http404(f"this report has no {name}")
    AuditEvent.objects.create(user=user, request=risk_request, action=action)
    return path


@login_required
def run_log(request, pk):
    require_engineer(request.user)
    path = request_dir(get_request(request.user, pk, "log")) / "run.log"
    text = path.read_text(errors="replace", encoding="utf-8") if path.is_file() else "(no finished attempt yet)"
    return HttpResponse(text, content_type="text/plain; charset=utf-8")


@login_required
@require_POST
def rerun(request, pk):
    require_engineer(request.user)
    risk_request = get_request(request.user, pk, "rerun")
    RiskRequest.objects.filter(pk=pk, status__in=FINISHED).update(
        status=Status.QUEUED, lease=None, lease_until=None, progress=0.0, stage="", error="", finished=None,
        attempts=0)
    return redirect("request-detail", pk=risk_request.pk)


@login_required
@require_POST
def cancel(request, pk):
    require_engineer(request.user)
    risk_request = get_request(request.user, pk, "cancel")
    RiskRequest.objects.filter(pk=pk).exclude(status__in=FINISHED).update(
        status=Status.CANCELLED, lease=None, lease_until=None, error="cancelled by an engineer")
    return redirect("request-detail", pk=risk_request.pk)
