"""lumaweb settings: every knob is an environment variable (see README and .env.example).

Malformed values stop start-up with a message naming the variable (``lumaweb.env``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from lumaweb.env import env_bool, env_float, env_int, env_list, env_price_table, env_str
from lumaweb.redis_tls import broker_ssl_options

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is False")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is False")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
CSRF_FAILURE_VIEW = "generations.api.errors.csrf_failure"  # JSON under /api/, the page elsewhere

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.forms",  # its widget templates, for FORM_RENDERER below
    "django_htmx",
    "template_partials",
    "axes",
    "csp",  # its checks warn of settings in django-csp's old (before 4.0) style
    "generations",
]
# devtools/ (the chaos run, the process spawners for tests) is test machinery that the Docker
# image does not copy: a checkout has it, so `manage.py chaos` works there, and production runs
# without it. find_spec only looks the package up (it imports nothing); the origin check keeps an
# unrelated PyPI package of the same name from being taken for ours.
_devtools = importlib.util.find_spec("devtools")
if _devtools is not None and Path(_devtools.origin or "").resolve().parent == BASE_DIR / "devtools":
    INSTALLED_APPS.append("devtools")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",  # CONTENT_SECURITY_POLICY below
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Outside everything that may touch the database: a friendly 503 while it is out of reach.
    "generations.outage.DatabaseOutageMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "generations.api.auth.ApiTokenMiddleware",
    # Knows who is asking (above) and runs before anything reads a body (CSRF's process_view).
    "generations.limits.BodyLimitMiddleware",
    "generations.login_required.LoginRequiredMiddleware",  # public views read no session
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # After the two above: toasts, Vary and the expired-session redirect for htmx answers.
    "generations.htmx.HtmxPlumbingMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses logins while locked out
    "django.contrib.auth.backends.ModelBackend",
]
# Brute-force protection on the login form (django-axes): after AXES_FAILURE_LIMIT wrong
# passwords for one user name from one address, that pair is locked out for a while.

ROOT_URLCONF = "lumaweb.urls"
WSGI_APPLICATION = "lumaweb.wsgi.application"

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
                "generations.context_processors.studio",
            ],
        },
    },
]

# Forms render through templates/django/forms/field.html (one look for every field), so a
# field's label, help, maxlength and placeholder are written once, in the form.
FORM_RENDERER = "django.forms.renderers.TemplatesSetting"

# A process keeps its database connection this many seconds (0: one per request or task); each
# web thread and worker process holds one, so with many machines mind PostgreSQL's
# max_connections, or put pgbouncer in between (docs/SCALING.md).
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        # A kept connection is checked before a request uses it: one left dead by a database
        # restart is replaced instead of failing that request.
        conn_health_checks=True,
    )
}
# Seconds to wait for PostgreSQL to accept a connection: a server that is down or unreachable
# costs a request (and /healthz) this much at most, then the outage page (generations/outage.py).
# A connect_timeout in DATABASE_URL's query string wins.
if DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql"):
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT", 5, minimum=1)
    )
# Behind pgbouncer in transaction pooling mode a server-side cursor (a QuerySet.iterator()) must
# not outlive its transaction: set this to True there (docs/SCALING.md).
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env_bool(
    "DATABASE_DISABLE_SERVER_SIDE_CURSORS", False
)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: wait for the write lock instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Tests run the Celery worker in another process: it must see the same file.
    (BASE_DIR / ".run").mkdir(exist_ok=True)
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / ".run" / "test-db.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_float("AXES_COOLOFF_MINUTES", 15.0, minimum=0.1) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
# Behind N reverse proxies, the client address is the N-th from the right in X-Forwarded-For
# (lumaweb/client_address.py). AXES_IPWARE_PROXY_COUNT is the name the README used to give; it is
# still read, so a deployment that set it is protected without a change.
TRUSTED_PROXY_COUNT = env_int(
    "TRUSTED_PROXY_COUNT", env_int("AXES_IPWARE_PROXY_COUNT", 0, minimum=0), minimum=0
)
AXES_CLIENT_IP_CALLABLE = "lumaweb.client_address.client_ip"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / ".run" / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# In development whitenoise serves straight from static/ (no collectstatic needed).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
if DEBUG:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
# Who sends a stored file's bytes once lumaweb said yes (generations/fileserve.py): `django`
# (the web process reads and sends them) or `accel` (an empty answer with X-Accel-Redirect:
# /protected-media/<path>, which nginx serves from MEDIA_ROOT: deploy/nginx.conf).
MEDIA_SERVE = env_str("MEDIA_SERVE", "django").strip().lower() or "django"
if MEDIA_SERVE not in ("django", "accel"):
    raise ImproperlyConfigured(f"MEDIA_SERVE must be django or accel, not {MEDIA_SERVE!r}")
# Where the copies, thumbnails and uploaded keyframes live (docs/MEDIA.md): `local` (MEDIA_ROOT,
# as always) or `s3` (a bucket of any S3-compatible service, through django-storages: the worker
# streams each copy into it, and the web process answers a viewer it said yes to with a 302 to a
# presigned URL that lives MEDIA_URL_TTL seconds, so no byte of media passes through it).
MEDIA_STORAGE = env_str("MEDIA_STORAGE", "local").strip().lower() or "local"
if MEDIA_STORAGE not in ("local", "s3"):
    raise ImproperlyConfigured(f"MEDIA_STORAGE must be local or s3, not {MEDIA_STORAGE!r}")
MEDIA_URL_TTL = env_int("MEDIA_URL_TTL", 300, minimum=1)
# django-storages' own names. Credentials left empty: boto3's usual chain (an instance role,
# ~/.aws, AWS_* in the environment) finds them. The secret is never logged nor shown.
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
AWS_S3_ENDPOINT_URL = env_str("AWS_S3_ENDPOINT_URL") or None  # empty: AWS itself
AWS_S3_REGION_NAME = env_str("AWS_S3_REGION_NAME") or None
AWS_ACCESS_KEY_ID = env_str("AWS_ACCESS_KEY_ID") or None
AWS_SECRET_ACCESS_KEY = env_str("AWS_SECRET_ACCESS_KEY") or None
# `path` (bucket in the path: MinIO, moto, most self-hosted services) or `virtual` (AWS's own)
AWS_S3_ADDRESSING_STYLE = (
    env_str("AWS_S3_ADDRESSING_STYLE", "path" if AWS_S3_ENDPOINT_URL else "") or None
)
AWS_S3_SIGNATURE_VERSION = "s3v4"
AWS_QUERYSTRING_AUTH = True  # every URL presigned: the bucket stays private
AWS_QUERYSTRING_EXPIRE = MEDIA_URL_TTL
AWS_DEFAULT_ACL = None  # the bucket's own (private) policy
AWS_S3_FILE_OVERWRITE = True  # a copy's name is its row's: a second copy replaces the first
if MEDIA_STORAGE == "s3":
    if not AWS_STORAGE_BUCKET_NAME:
        raise ImproperlyConfigured("MEDIA_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME")
    STORAGES["default"] = {"BACKEND": "generations.mediastore.S3MediaStorage"}
# Where a viewer's browser is sent for media (the Content-Security-Policy's img-src and
# media-src, below): the endpoint's origin, or AWS's S3 hosts.
_s3 = urlsplit(AWS_S3_ENDPOINT_URL or "")
MEDIA_S3_ORIGINS = env_list(
    "MEDIA_S3_ORIGINS",
    ([f"{_s3.scheme}://{_s3.netloc}"] if _s3.netloc else ["https://*.amazonaws.com"])
    if MEDIA_STORAGE == "s3"
    else [],
)

# --- the upstream -----------------------------------------------------------------------------
LUMA_API_KEY = env_str("LUMA_API_KEY")
# Empty key means demo mode: the built-in simulator (manage.py runsimulator) is the upstream.
LUMA_DEMO_MODE = not LUMA_API_KEY
# Where demo mode finds the simulator (docker compose: http://simulator:8001/v1).
LUMA_SIMULATOR_URL = env_str("LUMA_SIMULATOR_URL", "http://127.0.0.1:8001/v1")
# Which upstream dialect (generations.providers): UmamiAI's endpoints or Luma's official API.
LUMA_PROVIDER = env_str("LUMA_PROVIDER", "umamiai").strip().lower()
_PROVIDER_BASE_URLS = {
    "umamiai": "https://api.umamiai.xyz/v1",
    "luma": "https://api.lumalabs.ai/dream-machine/v1",
}
if LUMA_PROVIDER not in _PROVIDER_BASE_URLS:
    raise ImproperlyConfigured(
        f"LUMA_PROVIDER must be one of {', '.join(_PROVIDER_BASE_URLS)}, not {LUMA_PROVIDER!r}"
    )
LUMA_API_BASE_URL = env_str(
    "LUMA_API_BASE_URL",
    LUMA_SIMULATOR_URL if LUMA_DEMO_MODE else _PROVIDER_BASE_URLS[LUMA_PROVIDER],
).rstrip("/")
if (
    urlsplit(LUMA_API_BASE_URL).scheme not in ("http", "https")
    or not urlsplit(LUMA_API_BASE_URL).hostname
):
    raise ImproperlyConfigured(
        f"LUMA_API_BASE_URL must be an http(s) URL, not {LUMA_API_BASE_URL!r}"
    )
LUMA_TOKENS_PER_GENERATION = env_int("LUMA_TOKENS_PER_GENERATION", 500_000, minimum=0)
# Luma's official API (LUMA_PROVIDER=luma): prices in US cents by model:resolution:duration,
# over the estimated defaults in generations/providers/luma.py (PRICES); see docs/ARCHITECTURE.md.
LUMA_PRICE_TABLE = env_price_table("LUMA_PRICE_TABLE")
LUMA_POLL_INTERVAL = env_float("LUMA_POLL_INTERVAL", 5.0, minimum=0.1)
LUMA_POLL_BATCH_SIZE = env_int("LUMA_POLL_BATCH_SIZE", 50, minimum=1)
# A poll round takes batch after batch while rows are due (for at most one interval); when more
# than a batch is due, this many rounds share the batches at once (each on its own worker slot).
LUMA_POLL_PARALLEL = env_int("LUMA_POLL_PARALLEL", 2, minimum=1)
# Poll rounds go to their own Celery queue, so copies (downloads) never delay them: a worker
# started without -Q takes both queues; a dedicated poller (`celery worker -Q poll`) takes
# polls only (scripts/run and docker-compose.yml start one).
LUMA_POLL_QUEUE = env_str("LUMA_POLL_QUEUE", "poll")
# A provider without batched polling (Luma: one GET per id) is asked at most this many times a
# poll interval, by every poller together; the longest-due jobs first, the rest next round.
LUMA_POLL_MAX_REQUESTS = env_int("LUMA_POLL_MAX_REQUESTS", 20, minimum=1)
# A POST of unknown outcome the provider's list could not tell at once is looked at once more
# this many seconds later (a list may lag), then left to a person (generations/pipeline/lookup.py).
# 45 s: Luma's list counts as current 30 s after a POST (generations/providers/luma.py).
LUMA_LIST_LOOKUP_AGAIN_AFTER = env_float("LUMA_LIST_LOOKUP_AGAIN_AFTER", 45.0, minimum=0)
# A generation that shows no progress for this long is marked failed ("timed out").
LUMA_POLL_DEADLINE = env_float("LUMA_POLL_DEADLINE", 600.0, minimum=1)
LUMA_CONNECT_TIMEOUT = env_float("LUMA_CONNECT_TIMEOUT", 5.0, minimum=0.1)
LUMA_READ_TIMEOUT = env_float("LUMA_READ_TIMEOUT", 30.0, minimum=0.1)
LUMA_SUBMIT_MAX_ATTEMPTS = env_int("LUMA_SUBMIT_MAX_ATTEMPTS", 8, minimum=1)
# The account's capacity, shared by every worker and machine (0: no limit). Generations sent and
# not yet finished (Luma's entry tier runs 10 at once), and POSTs in any 60 seconds.
LUMA_MAX_IN_FLIGHT = env_int("LUMA_MAX_IN_FLIGHT", 10, minimum=0)
LUMA_MAX_SUBMITS_PER_MINUTE = env_int("LUMA_MAX_SUBMITS_PER_MINUTE", 20, minimum=0)
# The window LUMA_MAX_SUBMITS_PER_MINUTE counts POSTs over (60 s; tests and benchmarks shorten
# it, with a simulator whose rate window is as short, to run a minute's traffic in seconds).
LUMA_SUBMIT_RATE_WINDOW = env_float("LUMA_SUBMIT_RATE_WINDOW", 60.0, minimum=0.1)
# The pacer (generations/pipeline/pace.py): a 429, a 503 or a refused connection never counts
# toward LUMA_SUBMIT_MAX_ATTEMPTS, a Retry-After pauses every submit of the account, and submits
# slow down after a 429 (halved) and speed up gently again, up to the two caps above. False:
# the behaviour before it (each refusal an attempt, each job backing off on its own).
LUMA_SUBMIT_PACING = env_bool("LUMA_SUBMIT_PACING", True)
# A row left in `submitting` this long (a worker died mid-request) is swept.
LUMA_SUBMIT_STALE_AFTER = env_float("LUMA_SUBMIT_STALE_AFTER", 120.0, minimum=1)
LUMA_SWEEP_INTERVAL = env_float("LUMA_SWEEP_INTERVAL", 15.0, minimum=0.5)
# A queued row whose wake-up message was enqueued this long ago and not taken is enqueued again.
LUMA_REQUEUE_AFTER = env_float("LUMA_REQUEUE_AFTER", 60.0, minimum=0.5)
# While the account is on hold (out of credits, key refused), one queued job is tried this often.
LUMA_HOLD_RETRY = env_float("LUMA_HOLD_RETRY", 300.0, minimum=1)
# How long a poller or an asset copy holds its rows; a worker killed mid-step lets go after it.
LUMA_POLL_LEASE = env_float("LUMA_POLL_LEASE", 60.0, minimum=0.5)
LUMA_ASSET_LEASE = env_float("LUMA_ASSET_LEASE", 900.0, minimum=1)
LUMA_MAX_VIDEO_BYTES = env_int("LUMA_MAX_VIDEO_BYTES", 500 * 1024 * 1024, minimum=1)
LUMA_MAX_IMAGE_BYTES = env_int("LUMA_MAX_IMAGE_BYTES", 20 * 1024 * 1024, minimum=1)
LUMA_DOWNLOAD_TIMEOUT = env_float("LUMA_DOWNLOAD_TIMEOUT", 300.0, minimum=1)
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL").rstrip("/")
# Whether an extension's video already holds its parent's (the whole chain so far) or only the new
# part. The API documentation says neither; docs/ARCHITECTURE.md ("Chains") has what we found. A
# chain is played and joined from the leaf alone when True, from every clip of its path when False.
LUMA_EXTENSION_CONTAINS_PARENT = env_bool("LUMA_EXTENSION_CONTAINS_PARENT", False)
# A chain joined into one MP4 (MEDIA_ROOT/chains/) not downloaded for this many days is removed
# by the sweep (generations/chain_files.py); the next download joins it again.
LUMA_CHAIN_CACHE_DAYS = env_float("LUMA_CHAIN_CACHE_DAYS", 7.0, minimum=0)
# Workers and beat write a heartbeat this often; one not seen for LUMA_HEARTBEAT_STALE_AFTER
# counts as gone (every page then says jobs will wait). Four beats missed, not one: no flapping.
LUMA_HEARTBEAT_INTERVAL = env_float("LUMA_HEARTBEAT_INTERVAL", 15.0, minimum=0.5)
LUMA_HEARTBEAT_STALE_AFTER = env_float("LUMA_HEARTBEAT_STALE_AFTER", 60.0, minimum=1)
# A worker holding the service's answer to a paid POST while the database is away tries to
# record it for LUMA_DB_RETRY_SECONDS, then appends it to a journal file of its own process in
# LUMA_JOURNAL_DIR, which the sweeper and the workers record once the database is back
# (generations/pipeline/journal.py; docs/RELIABILITY.md). The folder must outlive the process
# (compose: on the /data volume).
LUMA_DB_RETRY_SECONDS = env_float("LUMA_DB_RETRY_SECONDS", 20.0, minimum=0)
LUMA_JOURNAL_DIR = Path(env_str("LUMA_JOURNAL_DIR", str(BASE_DIR / ".run" / "journal")))
# Outbound webhooks: private and loopback targets are refused unless this is set (a receiver on
# the same machine or network); retries back off from WEBHOOK_RETRY_BASE seconds, times four.
WEBHOOK_ALLOW_PRIVATE = env_bool("WEBHOOK_ALLOW_PRIVATE", False)
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
WEBHOOK_RETRY_BASE = env_float("WEBHOOK_RETRY_BASE", 15.0, minimum=0.1)

# --- Celery (broker only: state lives in the database) ------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://localhost:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"visibility_timeout": 3600}
# rediss:// (a password and TLS, docs/SCALING.md): the server's certificate is verified, which
# Celery does not do for a bare rediss:// URL; ?ssl_ca_certs=... names a private CA.
CELERY_BROKER_USE_SSL = broker_ssl_options(REDIS_URL)
if REDIS_URL.startswith("filesystem://"):
    # No Redis to be had: Celery's folder broker (development only).
    _queue_dir = Path(env_str("CELERY_FILESYSTEM_DIR", str(BASE_DIR / ".run" / "broker")))
    for _sub in ("queue", "processed", "control"):
        (_queue_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "queue"),
        "data_folder_out": str(_queue_dir / "queue"),
        "processed_folder": str(_queue_dir / "processed"),
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
    }
# Every queue a worker started without -Q consumes; poll rounds are routed to their own.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = tuple(
    Queue(name) for name in dict.fromkeys((CELERY_TASK_DEFAULT_QUEUE, LUMA_POLL_QUEUE))
)
CELERY_TASK_ROUTES = {"generations.tasks.poll_in_flight": {"queue": LUMA_POLL_QUEUE}}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 15 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 14 * 60
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE = {
    "poll-in-flight": {
        "task": "generations.tasks.poll_in_flight",
        "schedule": LUMA_POLL_INTERVAL,
        "options": {"expires": max(LUMA_POLL_INTERVAL * 2, 5)},
    },
    "sweep": {
        "task": "generations.tasks.sweep",
        "schedule": LUMA_SWEEP_INTERVAL,
        "options": {"expires": max(LUMA_SWEEP_INTERVAL * 2, 5)},
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = env_str(
    "CELERY_BEAT_SCHEDULE_FILENAME", str(BASE_DIR / ".run" / "celerybeat-schedule")
)

# --- the cache: share links' rate limits ---------------------------------------------------------
# Django's cache on the same Redis as the broker (its own key prefix), so that every web process
# counts a client's requests together; without a Redis (the filesystem broker), each process
# counts on its own, in memory. The rates are per client address (IPv6: per /64) and minute.
if REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "lumaweb-cache",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SHARE_PAGE_RATE = env_int("SHARE_PAGE_RATE", 60, minimum=1)
SHARE_MEDIA_RATE = env_int("SHARE_MEDIA_RATE", 600, minimum=1)

# --- security -----------------------------------------------------------------------------------
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
# Production assumes HTTPS (directly or through a proxy: set SECURE_PROXY_SSL_HEADER).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # container health checks speak plain HTTP
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", SECURE_HSTS_SECONDS > 0)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Content-Security-Policy (django-csp) for every answer that has none of its own (an uploaded
# keyframe is served with a sandboxing policy, generations/media.py). The pages load nothing from
# elsewhere, so the policy is strict: scripts, styles and the like from this origin only; no
# inline script, no eval (htmx runs without it: base.html's htmx-config), no inline style, not
# even style="" attributes (the templates carry none: shapes are CSS rules keyed by data-ratio,
# the ETA bar reads data attributes in app.js). Images and videos may also come from where the
# upstream keeps its files: a finished video is shown from there until its local copy exists,
# or for good if copying gave up. That host is the service's CDN, which its documentation does
# not name, so in live mode any https: origin (set LUMA_MEDIA_ORIGINS to the CDN's origin to
# narrow it); in demo mode the simulator's origin.
_upstream = urlsplit(LUMA_API_BASE_URL)
LUMA_MEDIA_ORIGINS = env_list(
    "LUMA_MEDIA_ORIGINS",
    [f"{_upstream.scheme}://{_upstream.netloc}"] if LUMA_DEMO_MODE else ["https:"],
)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [NONE],
        "script-src": [SELF],
        "style-src": [SELF],
        # data: the favicon, the search icon. blob: the create page's preview of a keyframe file
        # chosen, dropped or pasted (an object URL: only our own script, keyframes.js, makes one)
        "img-src": [SELF, "data:", "blob:", *LUMA_MEDIA_ORIGINS, *MEDIA_S3_ORIGINS],
        "media-src": [SELF, *LUMA_MEDIA_ORIGINS, *MEDIA_S3_ORIGINS],
        "font-src": [SELF],
        "connect-src": [SELF],  # htmx's requests
        "manifest-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    }
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# Bodies are refused (413) from their Content-Length before they are read
# (generations/limits.py): a stranger may send a login form; a person the create form with its
# two keyframe uploads (10 MB each, generations/forms.py) and the rest of the form. The reverse
# proxy's own limit (README, "Production") should be MAX_BODY_BYTES too.
MAX_ANONYMOUS_BODY_BYTES = 32 * 1024
MAX_BODY_BYTES = 21 * 1024 * 1024

# By default the terminal shows the pipeline's lines (queued, accepted, completed, failed, needs
# attention, copy failed, the account hold) and every warning, not a line per request or poll;
# LUMAWEB_VERBOSE=1 brings those back (runserver's request lines, the simulator's, Celery's
# banners). 4xx/5xx answers are warnings and errors: they always show.
LUMAWEB_VERBOSE = env_bool("LUMAWEB_VERBOSE", False)
LOG_FORMAT = env_str("LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "class": "lumaweb.logs.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {"()": "lumaweb.logs.JsonFormatter"},
    },
    "filters": {
        "redact": {"()": "lumaweb.logs.RedactSecretsFilter"},
        "outage": {"()": "generations.outage.OutageTracebackFilter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["redact"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "urllib3": {"level": "WARNING"},
        # One line per task run every few seconds is noise; failures still show.
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.beat": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        # A database outage is one "Service Unavailable" line per request, not a traceback each.
        "django.request": {"filters": ["outage"]},
        # runserver's line per request (Django's own handler replaced: this one redacts).
        "django.server": {
            "handlers": ["console"],
            "level": "INFO" if LUMAWEB_VERBOSE else "WARNING",
            "propagate": False,
        },
    },
}
