import getpass
import sys

from django.contrib.auth.models import Group, User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from bonefe.service.access import ENGINEERS


class Command(BaseCommand):
    help = "Add a user: clinician (default), engineer or admin; the password is asked for, or read from stdin."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", choices=["clinician", "engineer", "admin"], default="clinician")
        parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")

    def handle(self, *args, username, role, password_stdin, **options):
        password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass(f"Password for {username}: ")
        try:
            validate_password(password)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        call_command("migrate", interactive=False, verbosity=0)  # a fresh installation's first user
        if User.objects.filter(username=username).exists():
            raise CommandError(f"user {username!r} exists already")
        admin = role == "admin"
        user = User.objects.create_user(username, password=password, is_staff=admin, is_superuser=admin)
        if role == "engineer":
            user.groups.add(Group.objects.get_or_create(name=ENGINEERS)[0])
        self.stdout.write(f"added {role} {username}")
