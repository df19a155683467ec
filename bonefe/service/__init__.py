"""bonefe service: clinicians request risk reports in the browser; workers run them (docs/service.md).

A Django project in one app. The database (SQLite by default, PostgreSQL when
BONEFE_SERVICE_DATABASE_URL names one) is the source of truth for every request; files live under
BONEFE_SERVICE_HOME. Run it with `python -m bonefe.service serve` (what `make serve` does).
"""
