"""Roles: clinicians (every signed-in user) see their own requests; engineers see and manage all;
admins (Django superusers) manage users in /admin/ and count as engineers."""

from django.http import Http404
from django.shortcuts import get_object_or_404

from bonefe.service.models import AuditEvent, RiskRequest

ENGINEERS = "engineer"  # the Django group of engineers


def is_engineer(user) -> bool:
    return user.is_superuser or user.groups.filter(name=ENGINEERS).exists()


def visible_requests(user):
    """The requests a user may see at all."""
    return RiskRequest.objects.all() if is_engineer(user) else RiskRequest.objects.filter(owner=user)


def get_request(user, pk, action: str | None = None) -> RiskRequest:
    """The request pk if the user may see it (404 otherwise, as for one that does not exist);
    with an action, the access is written to the audit log."""
    request = get_object_or_404(visible_requests(user), pk=pk)
    if action is not None:
        AuditEvent.objects.create(user=user, request=request, action=action)
    return request


def require_engineer(user) -> None:
    if not is_engineer(user):
        raise Http404("no such page")
