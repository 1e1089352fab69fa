"""Distillery settings: one module, everything that differs between machines comes from the environment.

Embedded defaults (SQLite in ``var/``, a filesystem Celery broker) need no server; set ``DATABASE_URL``
and ``CELERY_BROKER_URL`` to run on PostgreSQL and Redis/RabbitMQ.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_DEBUG is off.")
    SECRET_KEY = "insecure-local-development-key-do-not-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

# var/ holds what this machine creates: the SQLite database, the embedded broker's folders, data.
# Under pytest, everything goes to var/test so a test run never touches the local instance's data or queues.
TESTING = "pytest" in sys.modules
VAR_DIR = Path(os.environ.get("DISTILLERY_VAR_DIR", BASE_DIR / ("var/test" if TESTING else "var"))).resolve()
DATA_DIR = Path(os.environ.get("DISTILLERY_DATA_DIR", VAR_DIR / "data")).resolve()
# Uploads wait here for their import job, under random names, outside the data dir (where models and
# evaluation folders live) and never served; each is deleted when its import finishes.
MEDIA_ROOT = Path(os.environ.get("DISTILLERY_UPLOAD_DIR", VAR_DIR / "private" / "uploads")).resolve()
MEDIA_URL = "/media/"
UPLOAD_MAX_BYTES = int(os.environ.get("DISTILLERY_UPLOAD_MAX_BYTES", str(2 * 2**30)))
VAR_DIR.mkdir(parents=True, exist_ok=True)
(VAR_DIR / "staticfiles").mkdir(exist_ok=True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    "django_htmx",
    "template_partials",
    "curation",
    "training",
    "evaluation",
]

MIDDLEWARE = [
    "config.availability.DatabaseDownMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    "config.middleware.LoginRequiredMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout answer.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # First, so a locked-out username/address is refused before its password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

_sqlite_path = VAR_DIR / "db.sqlite3"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{_sqlite_path}"), conn_max_age=60, conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the web server read while a worker writes; IMMEDIATE avoids lock upgrades failing mid-transaction.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not :memory:, so that a real worker process sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
if TESTING:
    # Password hashing is most of a factory-made user's cost; tests need no strength.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "curation:project_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 20 * 1024 * 1024

# Production hardening: on whenever DEBUG is off (``manage.py check --deploy`` is clean then).
# Trusting X-Forwarded-Proto is only safe behind a proxy that sets it, so it is off unless configured:
# DJANGO_SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO (the header the proxy sets, in META form).
if _proxy_header := os.environ.get("DJANGO_SECURE_PROXY_SSL_HEADER", "").strip():
    SECURE_PROXY_SSL_HEADER = (_proxy_header, "https")
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"

# Content-Security-Policy on every response (django-csp; Django 5.2 has no built-in CSP). Pages load
# scripts, styles and images from this server only; htmx runs from a static file, and no template has
# inline script, a <style> element or event-handler attributes. Images from anywhere else (tracking pixels
# in teacher text) are blocked here as well as stripped by the markdown sanitizer.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        # Progress bars set their width in a style attribute; attributes cannot load or run anything.
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# Trust model (README, "Security"). Operators (superusers, or users given the permission
# curation.operate_server) register what names the server: model paths, task folders; these settings
# say which environment variables may hold API keys and which non-public hosts teachers may call.
API_KEY_ENV_ALLOW = env_list("DISTILLERY_KEY_ENVS", "DISTILLERY_KEY_*")
TEACHER_ALLOWED_HOSTS = env_list("DISTILLERY_TEACHER_HOSTS", "")

# Login rate limiting (django-axes): after 5 failures for one username from one address, that pair is
# locked out for 15 minutes; the lockout page and the API say so in plain words.
AXES_FAILURE_LIMIT = int(os.environ.get("DISTILLERY_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(os.environ.get("DISTILLERY_LOGIN_COOLOFF_HOURS", "0.25"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_ENABLED = env_bool("DISTILLERY_LOGIN_RATE_LIMIT", True)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "config.schema.DistillerySchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Distillery API",
    "DESCRIPTION": "Curate teacher outputs, freeze datasets, train and evaluate students.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI and Redoc from this server (drf-spectacular-sidecar): docs work offline, no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a "status" field; name the shared choice sets instead of numbered StatusNNNEnum.
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "curation.models.JobStatus",
        "PromptStatusEnum": "curation.models.Prompt.Status",
    },
}

# Celery. Run state lives in our own tables, so no result backend is configured.
_broker_dir = VAR_DIR / "broker"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        "control_folder": str(_broker_dir / "control"),
        "polling_interval": 0.2,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 6 * 3600}
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "curation.tasks.generation_*": {"queue": "generation"},
    "training.tasks.*": {"queue": "training"},
    "evaluation.tasks.*": {"queue": "evaluation"},
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_QUEUES_ALL = "default,generation,training,evaluation"
# The job lifecycle's sweep (curation.jobs): lost jobs of every kind go back to the queue or fail with the reason.
# `celery beat` (or `worker -B` on one machine) sends it; every worker also runs it when it starts.
CELERY_BEAT_SCHEDULE = {
    "sweep-stale-jobs": {"task": "curation.sweep_stale_jobs", "schedule": 30.0},
}
# Imports commit in batches bounded by records and by bytes of input, whichever comes first (memory stays flat).
IMPORT_BATCH_RECORDS = int(os.environ.get("DISTILLERY_IMPORT_BATCH_RECORDS", "5000"))
IMPORT_BATCH_BYTES = int(os.environ.get("DISTILLERY_IMPORT_BATCH_BYTES", str(16 * 1024 * 1024)))
# Per kind of job: {"training": {"max_attempts": 5, "stale_seconds": 45}}; stale_seconds is at most 60.
JOB_POLICIES: dict = {}
# A queued job whose task message was sent this long ago, on a queue where a worker listens and nothing runs,
# lost its message (a broker restarted without persistence, a purge): the sweep sends it again.
JOB_RESEND_SECONDS = float(os.environ.get("DISTILLERY_JOB_RESEND_SECONDS", "120"))
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# Training: the accelerate config used to launch runs (empty: docs/accelerate/single.yaml, one process).
TRAINING_ACCELERATE_CONFIG = os.environ.get("DISTILLERY_ACCELERATE_CONFIG", "")

# The machine that trains and runs models, and what an hour of it costs (USD; 0: unknown), for the cost page.
DEVICE_NAME = os.environ.get("DISTILLERY_DEVICE", f"CPU ({os.cpu_count()} cores)")
DEVICE_COST_PER_HOUR = float(os.environ.get("DISTILLERY_DEVICE_COST_PER_HOUR", "0") or 0)


# Evaluations of built-in lm-eval tasks may fetch datasets from the hub only when this is on.
EVALUATION_ALLOW_HUB = env_bool("EVALUATION_ALLOW_HUB", False)

# Where hf / datasets caches go: inside the data dir, never ~/.cache, and never a hub download at run time.
os.environ.setdefault("HF_HOME", str(DATA_DIR / "hf_home"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
