import signal
import subprocess
import sys
import threading

from django.core.management import call_command
from django.core.management.base import BaseCommand
from waitress import serve

from bonefe.service.worker import die_with_parent
from bonefe.service.wsgi import application


class Command(BaseCommand):
    help = "Migrate the database, start the workers and serve the web pages on 127.0.0.1."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
        parser.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")

    def handle(self, *args, port=8000, host="127.0.0.1", workers=1, **options):
        call_command("migrate", interactive=False, verbosity=0)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the workers too (below)
        stop = threading.Event()
        processes = [_Supervised(stop) for _ in range(workers)]
        self.stdout.write(f"bonefe service on http://{host}:{port}/ with {workers} worker(s)")
        try:
            serve(application, host=host, port=port, threads=8)
        finally:
            stop.set()
            for process in processes:
                process.end()


class _Supervised(threading.Thread):
    """A worker process, started again whenever it exits until the service stops."""

    def __init__(self, stop: threading.Event):
        super().__init__(daemon=True)
        self.stop, self.process = stop, None
        self.start()

    def run(self):
        while not self.stop.is_set():
            self.process = subprocess.Popen([sys.executable, "-m", "bonefe.service", "worker"],
                                            preexec_fn=die_with_parent)
            self.process.wait()

    def end(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait()
