"""The database: requests (the source of truth for every run) and the audit log."""

import uuid

from django.conf import settings
from django.db import models

from bonefe.sites.vertebra.levels import LEVELS


class Status(models.TextChoices):
    QUEUED = "queued", "queued"
    MESHING = "meshing", "meshing"
    SOLVING = "solving", "solving"
    REPORT = "report", "writing the report"
    DONE = "done", "report ready"
    FAILED = "failed", "failed"
    CANCELLED = "cancelled", "cancelled"


class Bone(models.TextChoices):
    """The clinical sites of `bonefe.sites.SITES`: the femur and humerus by side, the vertebra by level."""
    FEMUR = "femur", "femur"
    HUMERUS = "humerus", "humerus"
    VERTEBRA = "vertebra", "vertebra"


SIDED = (Bone.FEMUR, Bone.HUMERUS)
"""Bones requested by side (left or right); the vertebra is requested by level instead."""


RUNNING = (Status.MESHING, Status.SOLVING, Status.REPORT)
FINISHED = (Status.DONE, Status.FAILED, Status.CANCELLED)


class RiskRequest(models.Model):
    """One clinician's request for a risk report of one bone (femur or humerus and its side, or a
    vertebra and its level, e.g. L1), and its run's state.

    A worker owns a running request while `lease_until` is in the future; it renews the lease
    (heartbeat) while the run lasts. A lapsed lease means the worker died: another one takes the
    request again. `lease` is a fresh token per claim, so a claim is one compare-and-swap.
    No name, ID or date of the patient is ever stored: only the model's inputs.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="requests")
    created = models.DateTimeField(auto_now_add=True)
    bone = models.CharField(max_length=16, choices=Bone.choices, default=Bone.FEMUR)
    side = models.CharField(max_length=5, blank=True, choices=[("left", "left"), ("right", "right")])
    level = models.CharField(max_length=3, blank=True, choices=[(level, level) for level in LEVELS])
    body_mass_kg = models.FloatField()
    pain = models.CharField(max_length=10, blank=True,
                            choices=[("mild", "mild"), ("moderate", "moderate"), ("functional", "functional")])
    lesion_type = models.CharField(max_length=8, blank=True,
                                   choices=[("lytic", "lytic"), ("blastic", "blastic"), ("mixed", "mixed")])
    ct_format = models.CharField(max_length=8)  # "dicom" or "nifti": what was uploaded
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    progress = models.FloatField(default=0.0)  # fraction of the run's stages finished, 0..1
    stage = models.CharField(max_length=40, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    lease = models.UUIDField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True, db_index=True)
    worker = models.CharField(max_length=80, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    failure_load_bw = models.FloatField(null=True, blank=True)
    risk_category = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"{self.site} ({self.status})"

    @property
    def site(self) -> str:
        """The bone in words: "left femur", "right humerus", "vertebra L1"."""
        return f"vertebra {self.level}" if self.bone == Bone.VERTEBRA else f"{self.side} {self.bone}"

    @property
    def finished_state(self) -> bool:
        return self.status in FINISHED


class AuditEvent(models.Model):
    """Who did what to which request, when (created, viewed the report, downloaded the PDF, ...)."""

    ACTIONS = [(a, a) for a in ("create", "view", "download", "log", "rerun", "cancel")]
    at = models.DateTimeField(auto_now_add=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    request = models.ForeignKey(RiskRequest, on_delete=models.PROTECT, related_name="audit")
    action = models.CharField(max_length=10, choices=ACTIONS)

    class Meta:
        ordering = ["-at"]
