"""Admin pages: users and groups (Django's own), requests and the audit log read-only."""

from django.contrib import admin

from bonefe.service.models import AuditEvent, RiskRequest


@admin.register(RiskRequest)
class RiskRequestAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "created", "side", "status", "attempts", "risk_category"]
    list_filter = ["status"]

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "user", "action", "request"]
    list_filter = ["action"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
