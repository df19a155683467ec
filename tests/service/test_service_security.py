"""Service security: roles and URL guessing, sign-in redirects, CSRF, upload limits, and DICOM
identifiers that must never reach the database, the files or the logs."""

import io
import uuid
import zipfile

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from service_support import HOME, PASSWORD, leave_queued_only, nifti_bytes

PLANTED = ["DOE^JANE^PLANTED", "PLANTED-ID-4711", "19420317", "St Planted Hospital", "ACC-PLANTED-99",
           "Dr^Planted^Referrer", "PLANTED-PRIVATE-TAG"]


def client(user=None):
    from django.test import Client

    c = Client(enforce_csrf_checks=True)
    if user is not None:
        c.force_login(user)
    return c


def post_with_csrf(c, url, data):
    """A POST carrying the CSRF token of a GET of the same page, as the browser does."""
    c.get(url)
    return c.post(url, {**data, "csrfmiddlewaretoken": c.cookies["csrftoken"].value})


def upload(c, ct: tuple[str, bytes], labels: tuple[str, bytes]):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return post_with_csrf(c, "/requests/new/", {
        "bone": "femur", "side": "left", "body_mass_kg": "72", "pain": "moderate", "lesion_type": "lytic",
        "ct": SimpleUploadedFile(*ct), "labels": SimpleUploadedFile(*labels)})


def finished_request(owner):
    """A request marked done with placeholder report files (no run needed to test access)."""
    from bonefe.service.models import RiskRequest
    from bonefe.service.worker import request_dir

    r = RiskRequest.objects.create(owner=owner, side="left", body_mass_kg=70, ct_format="nifti", status="done",
                                   failure_load_bw=7.0, risk_category="moderate")
    folder = request_dir(r) / "report"
    folder.mkdir(parents=True)
    (folder / "report.html").write_text("<h1>report</h1>", encoding="utf-8")
    (folder / "report.pdf").write_bytes(b"%PDF-1.4 test")
    return r


def test_unauthenticated_access_redirects_to_sign_in(django_db, make_user):
    r = finished_request(make_user())
    for url in ["/", "/requests/new/", f"/requests/{r.pk}/", f"/requests/{r.pk}/report/",
                f"/requests/{r.pk}/report.pdf", f"/requests/{r.pk}/log/"]:
        response = client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next="), url


def test_other_clinicians_report_is_unreachable_even_by_url_guessing(django_db, make_user):
    from bonefe.service.models import AuditEvent

    alice, bob, engineer = make_user(), make_user(), make_user("engineer")
    report = finished_request(alice)
    urls = [f"/requests/{report.pk}/", f"/requests/{report.pk}/report/", f"/requests/{report.pk}/report.pdf"]
    assert all(client(alice).get(u).status_code == 200 for u in urls)
    assert all(client(bob).get(u).status_code == 404 for u in urls)
    assert client(bob).get(f"/requests/{uuid.uuid4()}/").status_code == 404
    assert client(bob).get(f"/requests/{report.pk}/log/").status_code == 404  # engineers only
    assert str(report.pk) not in client(bob).get("/").content.decode()
    assert str(report.pk) in client(engineer).get("/").content.decode()
    assert client(engineer).get(f"/requests/{report.pk}/report.pdf").status_code == 200
    actions = sorted((e.user.username, e.action) for e in AuditEvent.objects.filter(request=report))
    assert actions == sorted([(alice.username, "view"), (alice.username, "download"),
                              (engineer.username, "download")])


def test_post_without_csrf_token_is_refused(django_db, make_user, small_images):
    from bonefe.service.models import RiskRequest

    engineer = make_user("engineer")
    report = finished_request(make_user())
    c = client(engineer)
    assert c.post(f"/requests/{report.pk}/rerun/").status_code == 403
    assert client().post("/accounts/login/", {"username": engineer.username, "password": PASSWORD}).status_code == 403
    before = RiskRequest.objects.count()
    assert c.post("/requests/new/", {"bone": "femur", "side": "left", "body_mass_kg": "70"}).status_code == 403
    assert RiskRequest.objects.count() == before
    response = c.post(f"/requests/{report.pk}/rerun/", {"csrfmiddlewaretoken": _token(c)})
    assert response.status_code == 302
    assert RiskRequest.objects.get(pk=report.pk).status == "queued"


def _token(c):
    c.get("/")
    return c.cookies["csrftoken"].value


def test_clinician_cannot_rerun_or_cancel(django_db, make_user):
    alice = make_user()
    report = finished_request(alice)
    c = client(alice)
    assert c.post(f"/requests/{report.pk}/rerun/", {"csrfmiddlewaretoken": _token(c)}).status_code == 404


def dicom_zip(pixels: np.ndarray, spacing=(0.8, 0.7, 1.5), origin=(-40.0, -30.0, 100.0), extra=None) -> bytes:
    """A zip of one CT series (slices along +z, LPS origin and spacing in mm) with identifiers planted."""
    buffer = io.BytesIO()
    study, series = generate_uid(), generate_uid()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for k in range(pixels.shape[2]):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = pydicom.Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
            ds.PatientName, ds.PatientID, ds.PatientBirthDate = PLANTED[0], PLANTED[1], PLANTED[2]
            ds.InstitutionName, ds.AccessionNumber, ds.ReferringPhysicianName = PLANTED[3], PLANTED[4], PLANTED[5]
            ds.add_new(0x00991010, "LO", PLANTED[6])
            ds.Modality, ds.InstanceNumber = "CT", k + 1
            ds.ImagePositionPatient = [origin[0], origin[1], origin[2] + k * spacing[2]]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.PixelSpacing = [spacing[1], spacing[0]]  # row spacing (y), column spacing (x)
            ds.SliceThickness = spacing[2]
            ds.Rows, ds.Columns = pixels.shape[1], pixels.shape[0]
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
            ds.PixelData = (pixels[:, :, k].T + 1024).astype(np.int16).tobytes()
            ds.update(extra or {})
            out = io.BytesIO()
            ds.save_as(out, enforce_file_format=True)
            archive.writestr(f"series/IM{k:04d}.dcm", out.getvalue())
    return buffer.getvalue()


def test_dicom_upload_is_deidentified_and_converted_exactly(django_db, make_user, capfd, caplog):
    """The DICOM series becomes a NIfTI with the same HU and geometry (LPS origin (-40, -30, 100) mm,
    spacing 0.8/0.7/1.5 mm -> RAS affine diag(-0.8, -0.7, 1.5), translation (40, 30, 100)), and the
    planted identifiers appear nowhere: database, any file of the service, its logs, a run's log."""
    import nibabel as nib
    from django.core.management import call_command

    from bonefe.service.models import RiskRequest
    from bonefe.service.worker import request_dir, serve_forever

    hu = np.arange(10 * 9 * 6, dtype=np.int16).reshape(10, 9, 6) - 200
    labels = np.zeros(hu.shape, np.uint8)
    labels[2:8, 2:7, :] = 1
    affine = np.array([[-0.8, 0, 0, 40.0], [0, -0.7, 0, 30.0], [0, 0, 1.5, 100.0], [0, 0, 0, 1]])
    user = make_user()
    response = upload(client(user), ("ct.zip", dicom_zip(hu)), ("labels.nii.gz", nifti_bytes(labels, affine)))
    assert response.status_code == 302, response.content.decode()[-800:]
    request = RiskRequest.objects.get(pk=response["Location"].split("/")[2])
    ct = nib.load(request_dir(request) / "ct.nii.gz")
    np.testing.assert_allclose(ct.affine, affine, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(ct.dataobj), hu)
    leave_queued_only(user)
    serve_forever(once=True)  # the (fake) run writes its log and report files too

    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    texts = [dump.getvalue(), capfd.readouterr().out, capfd.readouterr().err, caplog.text]
    for path in HOME.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            texts.append(data.decode("latin-1"))
            if path.suffix == ".gz":
                import gzip
                texts.append(gzip.decompress(data).decode("latin-1"))
    for planted in PLANTED:
        assert not any(planted in text for text in texts), planted
        assert not any(planted.replace("^", " ") in text for text in texts), planted


@pytest.mark.parametrize("name, make, message", [
    ("evil.zip", lambda: _zip({"../../etc/evil.dcm": b"x" * 10}), "unsafe file name"),
    ("abs.zip", lambda: _zip({"/etc/passwd": b"x"}), "unsafe file name"),
    ("bomb.zip", lambda: _zip({"zeros.dcm": bytes(65 * 2**20)}), "expands to more than the upload limit"),
    ("notes.zip", lambda: _zip({"readme.txt": b"hello"}), "does not hold a DICOM series"),
    ("ct.png", lambda: b"\x89PNG....", "is not NIfTI"),
    ("ct.nii.gz", lambda: b"\x1f\x8b" + b"garbage", "damaged"),
])
def test_bad_uploads_are_refused_in_plain_words_and_leave_nothing(django_db, make_user, small_images, name,
                                                                  make, message):
    from bonefe.service.models import RiskRequest

    before = (RiskRequest.objects.count(), sorted(p.name for p in (HOME / "requests").glob("*"))
              if (HOME / "requests").exists() else [])
    response = upload(client(make_user()), (name, make()), ("labels.nii.gz", small_images[1]))
    assert response.status_code == 200
    page = response.content.decode()
    assert message in page and "Nothing was saved" in page and "Traceback" not in page
    after = (RiskRequest.objects.count(), sorted(p.name for p in (HOME / "requests").glob("*"))
             if (HOME / "requests").exists() else [])
    assert after == before


def test_mismatched_label_map_is_refused(django_db, make_user, small_images):
    labels = nifti_bytes(np.zeros((12, 12, 9), np.uint8))
    response = upload(client(make_user()), ("ct.nii.gz", small_images[0]), ("labels.nii.gz", labels))
    assert "does not match the CT (12×12×8 voxels)" in response.content.decode()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_upload_over_the_size_limit_is_refused_before_reading(django_db, make_user, small_images):
    from django.test import override_settings

    from bonefe.service.models import RiskRequest

    before = RiskRequest.objects.count()
    with override_settings(MAX_UPLOAD_BYTES=4096):
        response = upload(client(make_user()), ("ct.nii", bytes(8192)), ("labels.nii.gz", small_images[1]))
    assert "larger than 0.00391 MB: refused. Nothing was saved." in response.content.decode()
    assert RiskRequest.objects.count() == before
