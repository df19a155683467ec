"""WSGI entry point (`bonefe.service.wsgi:application`) for any WSGI server."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bonefe.service.settings")
application = get_wsgi_application()
