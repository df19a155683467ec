"""`python -m bonefe.service COMMAND`: Django's manage.py for the service (migrate, serve, worker, ...)."""

import os
import sys

from django.core.management import execute_from_command_line

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bonefe.service.settings")
    execute_from_command_line(sys.argv)
