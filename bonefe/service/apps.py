from django.apps import AppConfig


class ServiceConfig(AppConfig):
    name = "bonefe.service"
    label = "service"
    default_auto_field = "django.db.models.BigAutoField"
