"""Bone sites on the request form: the femur and humerus by side, the vertebra by level (e.g. L1).
A request writes its case file as cases/*.yaml do (`site:`, `level:`), and it loads as a bonefe
case; a missing or misplaced side or level is refused with one plain sentence and nothing saved;
the list and request pages name the bone; the migrations match the model."""

import pytest
import yaml

from service_support import HOME
from test_service_security import client, finished_request, post_with_csrf


def submit(c, small_images, **fields):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = {"bone": "femur", "side": "", "level": "", "body_mass_kg": "72", "pain": "", "lesion_type": "lytic",
            **fields}
    return post_with_csrf(c, "/requests/new/", {**data, "ct": SimpleUploadedFile("ct.nii.gz", small_images[0]),
                                                "labels": SimpleUploadedFile("labels.nii.gz", small_images[1])})


def written_case(response) -> tuple[dict, "object"]:
    """The case file the worker writes for the request just created, and the request."""
    from bonefe.service.models import RiskRequest
    from bonefe.service.worker import write_case

    assert response.status_code == 302, response.content.decode()[-2000:]
    request = RiskRequest.objects.get(pk=response["Location"].split("/")[2])
    return yaml.safe_load(write_case(request).read_text(encoding="utf-8")), request


def test_vertebra_request_writes_a_vertebra_case_with_its_level(django_db, make_user, small_images):
    from bonefe.case import load_case
    from bonefe.service.worker import request_dir

    c = client(make_user())
    case, request = written_case(submit(c, small_images, bone="vertebra", level="L1"))
    assert case["site"] == "vertebra" and case["level"] == "L1"
    assert case["patient"] == {"body_mass_kg": 72.0}  # no side, no Mirels pain, nothing identifying
    assert case["material"] == {"law": "morgan2003_vertebra"}  # as cases/spine-l1-lytic.yaml
    assert set(case) == {"name", "site", "level", "ct", "labels", "patient", "label_values", "mesh", "material"}
    loaded = load_case(request_dir(request) / "case.yaml")
    assert (loaded.site, loaded.level) == ("vertebra", "L1")
    assert request.site == "vertebra L1"
    assert "vertebra L1" in c.get("/").content.decode()
    assert "Vertebra L1, 72 kg" in c.get(f"/requests/{request.pk}/").content.decode()


@pytest.mark.parametrize("bone, side", [("humerus", "right"), ("femur", "left")])
def test_sided_request_writes_its_site_and_side(django_db, make_user, small_images, bone, side):
    from bonefe.case import load_case
    from bonefe.service.worker import request_dir

    c = client(make_user())
    case, request = written_case(submit(c, small_images, bone=bone, side=side, pain="moderate"))
    assert case["site"] == bone and "level" not in case and "material" not in case
    assert case["patient"] == {"body_mass_kg": 72.0, "side": side, "pain": "moderate"}
    loaded = load_case(request_dir(request) / "case.yaml")
    assert (loaded.site, loaded.patient.side, loaded.level) == (bone, side, None)
    assert f"{side} {bone}" in c.get("/").content.decode()


@pytest.mark.parametrize("fields, message", [
    ({"bone": "femur"}, "choose the side of the femur: left or right"),
    ({"bone": "humerus"}, "choose the side of the humerus: left or right"),
    ({"bone": "vertebra"}, "choose the level of the vertebra, e.g. L1"),
    ({"bone": "vertebra", "level": "L1", "side": "left"},
     "a vertebra is requested by its level, not a side: leave the side empty"),
    ({"bone": "vertebra", "level": "L1", "pain": "mild"},
     "the Mirels pain score is for the femur and humerus: leave it empty for a vertebra"),
    ({"bone": "femur", "side": "left", "level": "L1"}, "a femur has no spinal level: leave the level empty"),
    ({"bone": "vertebra", "level": "S1"}, "Select a valid choice. S1 is not one of the available choices."),
    ({"bone": "tibia", "side": "left"}, "Select a valid choice. tibia is not one of the available choices."),
])
def test_wrong_side_or_level_is_refused_in_plain_words(django_db, make_user, small_images, fields, message):
    from bonefe.service.models import RiskRequest

    before = (RiskRequest.objects.count(), sorted(p.name for p in (HOME / "requests").glob("*"))
              if (HOME / "requests").exists() else [])
    response = submit(client(make_user()), small_images, **fields)
    assert response.status_code == 200
    page = response.content.decode()
    assert message in page and "Traceback" not in page
    assert page.count('class="error"') == 1  # one message for the one mistake
    after = (RiskRequest.objects.count(), sorted(p.name for p in (HOME / "requests").glob("*"))
             if (HOME / "requests").exists() else [])
    assert after == before


def test_migrations_are_applied_and_match_the_model(django_db):
    from django.core.management import call_command
    from django.db.migrations.recorder import MigrationRecorder

    applied = {name for app, name in MigrationRecorder(django_db).applied_migrations() if app == "service"}
    assert {"0001_initial", "0002_sites"} <= applied
    call_command("makemigrations", "service", check=True, dry_run=True, verbosity=0)  # exits 1 when one is missing


def test_report_without_pdf_is_a_plain_404(django_db, make_user):
    """A finished report without report.pdf (written before its site had one) answers 404, not a crash,
    and no download is written to the audit log; a vertebra report with its PDF downloads."""
    from bonefe.service.models import AuditEvent
    from bonefe.service.worker import request_dir

    user = make_user()
    r = finished_request(user)
    r.bone, r.side, r.level = "vertebra", "", "L1"
    r.save()
    c = client(user)
    assert c.get(f"/requests/{r.pk}/report.pdf").status_code == 200
    (request_dir(r) / "report" / "report.pdf").unlink()
    assert c.get(f"/requests/{r.pk}/report.pdf").status_code == 404
    assert AuditEvent.objects.filter(request=r, action="download").count() == 1


def test_the_documented_first_admin_command_adds_an_admin_and_refuses_a_weak_password(django_db, monkeypatch):
    """`python -m bonefe.service adduser NAME --role admin --password-stdin` (docs/service.md): an
    admin who can sign in; a common or short password and an existing name are refused in one line."""
    import io

    from django.contrib.auth import authenticate
    from django.core.management import call_command
    from django.core.management.base import CommandError

    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough passphrase 7\n"))
    call_command("adduser", "first-admin", role="admin", password_stdin=True, stdout=io.StringIO())
    user = authenticate(username="first-admin", password="a long enough passphrase 7")
    assert user is not None and user.is_superuser and user.is_staff
    for password, name in (("password1\n", "weak"), ("short\n", "short"), ("another long passphrase 8\n", "first-admin")):
        monkeypatch.setattr("sys.stdin", io.StringIO(password))
        with pytest.raises(CommandError):
            call_command("adduser", name, password_stdin=True, stdout=io.StringIO())
