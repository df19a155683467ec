from django.core.management.base import BaseCommand

from bonefe.service.worker import serve_forever


class Command(BaseCommand):
    help = "Run queued risk-report requests one after another (start several for parallel runs)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="stop when the queue is empty")
        parser.add_argument("--poll", type=float, default=1.0, metavar="S", help="seconds between queue checks")

    def handle(self, *args, once=False, poll=1.0, **options):
        serve_forever(poll, once)
