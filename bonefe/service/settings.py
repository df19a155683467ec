"""Django settings of the bonefe service, all from environment variables with safe local defaults.

BONEFE_SERVICE_HOME          folder of the SQLite database, the secret key and every request's files
                             (default: ./service-data)
BONEFE_SERVICE_DATABASE_URL  postgresql://user:password@host:port/name[?libpq parameters] to use PostgreSQL
                             instead of SQLite (e.g. ?sslmode=require)
BONEFE_SERVICE_RANKS         MPI ranks per run (default 1: no mpirun)
BONEFE_SERVICE_LAUNCHER      where runs go: local (default: processes of the worker's machine) or slurm
                             (each run in a Slurm allocation of its own, started with srun)
BONEFE_SERVICE_SLURM_OPTIONS more srun options for the slurm launcher (e.g. "--partition=fe --time=30")
BONEFE_SERVICE_MESH_MM       mesh.size_mm of every generated case (mm, default 3.0, the demo's)
BONEFE_SERVICE_LEASE_S       seconds a worker's claim on a request lasts without a heartbeat (default 60)
BONEFE_SERVICE_MAX_UPLOAD_MB largest request upload, CT and labels together (MB, default 1024)
BONEFE_SERVICE_RUN_COMMAND   the command that runs a case file (default: this Python, -m bonefe.cli run);
                             tests replace it with a fake fast runner
BONEFE_SERVICE_HOSTS         host names the service answers to (default: 127.0.0.1 localhost)
"""

import os
import secrets
import shlex
import sys
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

HOME = Path(os.environ.get("BONEFE_SERVICE_HOME", "service-data")).resolve()
HOME.mkdir(parents=True, exist_ok=True)
REQUESTS_DIR = HOME / "requests"


def _secret_key() -> str:
    """A random key made once per installation and kept in HOME/secret-key (mode 600)."""
    path = HOME / "secret-key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_urlsafe(50))
    return path.read_text(encoding="utf-8").strip()


def _database(url: str | None) -> dict:
    if not url:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": HOME / "db.sqlite3",
                "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"}}
    parts = urlparse(url)
    return {"ENGINE": "django.db.backends.postgresql", "NAME": parts.path.lstrip("/"),
            "USER": unquote(parts.username or ""), "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "", "PORT": parts.port or "",
            "OPTIONS": dict(parse_qsl(parts.query))}  # libpq parameters, e.g. ?sslmode=require


SECRET_KEY = _secret_key()
DEBUG = False
ALLOWED_HOSTS = os.environ.get("BONEFE_SERVICE_HOSTS", "127.0.0.1 localhost").split()
DATABASES = {"default": _database(os.environ.get("BONEFE_SERVICE_DATABASE_URL"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

RANKS = int(os.environ.get("BONEFE_SERVICE_RANKS", "1"))
LAUNCHER = os.environ.get("BONEFE_SERVICE_LAUNCHER", "local")
if LAUNCHER not in ("local", "slurm"):
    raise ImproperlyConfigured(f"BONEFE_SERVICE_LAUNCHER must be local or slurm (got {LAUNCHER!r})")
SLURM_OPTIONS = shlex.split(os.environ.get("BONEFE_SERVICE_SLURM_OPTIONS", ""))
MESH_MM = float(os.environ.get("BONEFE_SERVICE_MESH_MM", "3.0"))
LEASE_SECONDS = float(os.environ.get("BONEFE_SERVICE_LEASE_S", "60"))
MAX_UPLOAD_BYTES = int(float(os.environ.get("BONEFE_SERVICE_MAX_UPLOAD_MB", "1024")) * 2**20)
RUN_COMMAND = shlex.split(os.environ.get("BONEFE_SERVICE_RUN_COMMAND", "")) or [
    sys.executable, "-m", "bonefe.cli", "run"]

INSTALLED_APPS = [
    "django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
    "django.contrib.sessions", "django.contrib.messages", "django.contrib.staticfiles",
    "bonefe.service.apps.ServiceConfig",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "bonefe.service.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request", "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages"]},
}]
WSGI_APPLICATION = "bonefe.service.wsgi.application"

# Argon2id first (argon2-cffi); PBKDF2 stays readable for hashes made before.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher",
                    "django.contrib.auth.hashers.PBKDF2PasswordHasher"]
AUTH_PASSWORD_VALIDATORS = [{"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
                             "OPTIONS": {"min_length": 10}},
                            {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"}]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "request-list"
LOGOUT_REDIRECT_URL = "login"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 8 * 3600  # a working day (s)
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "SAMEORIGIN"  # the report opens in a frame of the service's own page

# Uploads stay in memory (no temporary copy of an un-de-identified DICOM on disk); the view refuses
# bodies larger than MAX_UPLOAD_BYTES before reading them.
FILE_UPLOAD_HANDLERS = ["django.core.files.uploadhandler.MemoryFileUploadHandler"]
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES
DATA_UPLOAD_MAX_NUMBER_FILES = 2

STATIC_URL = "static/"
WHITENOISE_USE_FINDERS = True
USE_TZ = True
TIME_ZONE = "UTC"
LOGGING = {"version": 1, "disable_existing_loggers": False,
           "handlers": {"console": {"class": "logging.StreamHandler"}},
           "root": {"handlers": ["console"], "level": "INFO"}}
