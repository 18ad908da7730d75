"""EasyAI settings: every value from an environment variable, with an embedded default.

The defaults run the portal on a laptop: SQLite under var/, the local backend,
django-q2's ORM broker and the in-memory channel layer. Production switches to
MySQL, Redis and Kubernetes clusters through the variables documented in the
README. A wrong value fails at start with ImproperlyConfigured.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
import secrets
import sys
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from easyai_site import prepare

BASE_DIR = Path(__file__).resolve().parent.parent


# --- typed readers -----------------------------------------------------------


def env_str(name: str, default: str = "") -> str:
    """A string from NAME, or from the file named by NAME_FILE (for secrets)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}")
    return value


def env_float(name: str, default: float, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def database_from_url(url: str) -> dict:
    """DATABASE_URL: mysql://user:password@host:port/name or sqlite:///path."""
    parsed = urlparse(url)
    if parsed.scheme in {"mysql", "mariadb"}:
        name = parsed.path.lstrip("/")
        if not name:
            raise ImproperlyConfigured("DATABASE_URL names no database (mysql://user:pass@host:3306/NAME)")
        options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        test_name = options.pop("test_name", None) or f"test_{name}"
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": name,
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "127.0.0.1",
            "PORT": str(parsed.port or 3306),
            "CONN_MAX_AGE": env_int("EASYAI_DB_CONN_MAX_AGE", 60, minimum=0),
            "OPTIONS": {
                "charset": "utf8mb4",
                "init_command": "SET sql_mode='STRICT_TRANS_TABLES', innodb_strict_mode=1",
                "isolation_level": "read committed",
                **options,
            },
            "TEST": {
                "NAME": test_name,
                # The server's default collation: guardian compares a varchar column with CAST(id AS CHAR),
                # which takes the connection's collation, and the two must match.
                "CHARSET": "utf8mb4",
            },
        }
    if parsed.scheme == "sqlite":
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else parsed.path
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path or str(VAR_DIR / "easyai.sqlite3")}
    raise ImproperlyConfigured(f"DATABASE_URL scheme {parsed.scheme!r} is not supported (use mysql:// or sqlite:///)")


def redis_url(name: str) -> str:
    """A redis:// or rediss:// URL with a host (and an optional database number), or "" when unset."""
    url = env_str(name)
    if not url:
        return ""
    parsed = urlparse(url)
    shown = url.replace(f":{parsed.password}@", ":***@") if parsed.password else url
    try:
        parsed.port  # noqa: B018 - reading it validates it
    except ValueError:
        raise ImproperlyConfigured(f"{name}={shown!r} has a bad port (use redis://host:6379/0)") from None
    if parsed.scheme not in {"redis", "rediss"} or not parsed.hostname:
        raise ImproperlyConfigured(
            f"{name}={shown!r} is not a Redis URL: it must start with redis:// or rediss:// and name a host "
            "(redis://host:6379/0)"
        )
    if parsed.path.strip("/") and not parsed.path.strip("/").isdigit():
        raise ImproperlyConfigured(
            f"{name}={shown!r}: the database after the host must be a number (redis://host:6379/0)"
        )
    return url


_DOTTED_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def _module_findable(dotted: str) -> bool:
    """Whether a module can be found on the path, without running its code or its packages' (settings load first)."""
    if dotted in sys.modules:
        return True
    parts = dotted.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return False
    for depth in range(1, len(parts)):
        if spec is None or spec.submodule_search_locations is None:
            return False
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: depth + 1]), spec.submodule_search_locations)
    return spec is not None


def env_class_paths(name: str, default: list[str]) -> list[str]:
    """Comma-separated dotted paths of classes (module.Class) whose modules are installed."""
    paths = env_list(name, default)
    for path in paths:
        if not _DOTTED_PATH.fullmatch(path):
            raise ImproperlyConfigured(f"{name}: {path!r} is not a dotted path (package.module.Class)")
        module = path.rpartition(".")[0]
        if not _module_findable(module):
            raise ImproperlyConfigured(f"{name}: {path!r} cannot be used: no module {module!r} is installed")
    return paths


# --- core --------------------------------------------------------------------

# Settings only read: the entry points (manage.py, asgi.py, wsgi.py) make var/ and its secret key first.
VAR_DIR = prepare.var_dir()

# Off unless asked for: a debug page shows settings, the environment and the code to whoever meets an error.
DEBUG = env_bool("EASYAI_DEBUG", False)
# Debug pages hide the passwords inside connection strings (DATABASE_URL, REDIS_URL...) too.
DEFAULT_EXCEPTION_REPORTER_FILTER = "easyai_site.reporting.ConnectionStringSafeFilter"
DEFAULT_EXCEPTION_REPORTER = "easyai_site.reporting.ConnectionStringSafeReporter"


def _secret_key() -> tuple[str, bool]:
    """The key and whether it is this process's own (nothing configured and none prepared: a test runner, a
    bare django.setup()); the portal's entry points generate one into var/ first (easyai_site/prepare.py)."""
    key = env_str("SECRET_KEY")
    if key:
        return key, False
    try:
        key = prepare.secret_key_file().read_text().strip()
    except FileNotFoundError:
        key = ""
    return (key, False) if key else (secrets.token_urlsafe(50), True)


SECRET_KEY, SECRET_KEY_EPHEMERAL = _secret_key()
ALLOWED_HOSTS = env_list("EASYAI_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("EASYAI_CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("EASYAI_SITE_URL", "http://127.0.0.1:8000").rstrip("/")


def _endpoints_url(name: str) -> str:
    """Where the endpoint proxy serves, an origin apart from the portal's: scheme://host[:port], where the host
    may be a wildcard (*.endpoints.example.com: one host per endpoint). Unset, on a loopback SITE_URL: the other
    loopback name on the next port (http://localhost:8001 beside http://127.0.0.1:8000)."""
    site = urlparse(SITE_URL)
    site_host = (site.hostname or "").lower()
    raw = env_str(name).strip().rstrip("/")
    if not raw:
        other = {"127.0.0.1": "localhost", "localhost": "127.0.0.1", "::1": "localhost"}.get(site_host)
        if other is None:
            raise ImproperlyConfigured(
                f"{name} is required when EASYAI_SITE_URL is not on this machine: the endpoint proxy serves tasks' "
                "pages from a host of its own (https://endpoints.example.com, or *.endpoints.example.com)"
            )
        return f"http://{other}:{(site.port or 8000) + 1}"
    parsed = urlparse(raw)
    try:
        parsed.port  # noqa: B018 - reading it validates it
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} has a bad port") from None
    host = (parsed.hostname or "").lower()
    wildcard = host.startswith("*.")
    if (
        parsed.scheme not in {"http", "https"}
        or not host
        or parsed.path
        or parsed.query
        or parsed.username
        or "*" in (host[2:] if wildcard else host)
    ):
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not an origin: use scheme://host[:port], e.g. https://endpoints.example.com or "
            "https://*.endpoints.example.com"
        )
    if host == site_host or (wildcard and (host[2:] == site_host or host[2:].endswith("." + site_host))):
        raise ImproperlyConfigured(
            f"{name}={raw!r} shares its host with EASYAI_SITE_URL: the portal's cookies would reach tasks' pages"
        )
    return raw


EASYAI_ENDPOINTS_URL = _endpoints_url("EASYAI_ENDPOINTS_URL")
# Seconds a browser remembers to use HTTPS only (sent on HTTPS responses without debug; 0: never).
SECURE_HSTS_SECONDS = env_int("EASYAI_HSTS_SECONDS", 0 if DEBUG else 365 * 86400, minimum=0)
if env_bool("EASYAI_TLS_PROXY", False):
    # A proxy in front terminates TLS and says so in X-Forwarded-Proto: requests count as HTTPS (HSTS, cookies).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "django_q",
    "channels",
    "easyai_site",
    "teams",
    "assets",
    "accounts",
    "clusters",
    "jobs",
    "endpoints",
    "notebooks",
    "serving",
    "apps",
    "pipelines",
    "monitoring",
    "files",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A database that cannot be reached answers 503 with Retry-After, not 500 (easyai_site/api.py).
    "easyai_site.api.DatabaseUnavailableMiddleware",
    # Content-Security-Policy on the portal's pages (easyai_site/security.py).
    "easyai_site.security.ContentSecurityPolicyMiddleware",
    # Static files under /static/ in production (with DEBUG it finds them in the apps, as runserver would).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "teams.middleware.CurrentTeamMiddleware",
]

ROOT_URLCONF = "easyai_site.urls"
WSGI_APPLICATION = "easyai_site.wsgi.application"
ASGI_APPLICATION = "easyai_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "teams.context_processors.current_team",
                "teams.context_processors.nav_items",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL")
DATABASES = {
    "default": database_from_url(DATABASE_URL)
    if DATABASE_URL
    else {"ENGINE": "django.db.backends.sqlite3", "NAME": str(VAR_DIR / "easyai.sqlite3")}
}
if DATABASES["default"]["ENGINE"].endswith("mysql"):
    # The MySQL driver is an extra (requirements-mysql.txt): it builds against the client headers.
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        raise ImproperlyConfigured(
            "DATABASE_URL names MySQL but its driver is not installed: "
            "apt-get install libmariadb-dev pkg-config, then pip install -r requirements-mysql.txt"
        ) from None
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Many workers and the portal share one file: wait for locks rather than fail.
    # Write-ahead log: readers never wait for the writer, a commit is one append (synchronous=NORMAL: durable
    # across a crash of the portal, the last commits may go with a power cut). Connections are kept a minute.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("EASYAI_DB_CONN_MAX_AGE", 60, minimum=0)
    # Tests use a file, not shared-cache memory, so threads and live servers get real concurrent connections.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
FORMS_URLFIELD_ASSUME_HTTPS = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    *env_class_paths("EASYAI_AUTH_BACKENDS", ["django.contrib.auth.backends.ModelBackend"]),
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# Sign-up is off: accounts come from the admin, LDAP or OIDC. Turned on, new accounts wait (inactive) for a
# platform admin's approval in the admin unless EASYAI_SIGNUP_APPROVAL=0.
EASYAI_SIGNUP_ENABLED = env_bool("EASYAI_SIGNUP_ENABLED", False)
EASYAI_SIGNUP_APPROVAL = env_bool("EASYAI_SIGNUP_APPROVAL", True)
# Who may create teams (and so become a team admin): "staff" (platform admins) or "everyone" signed in.
EASYAI_TEAM_CREATORS = env_str("EASYAI_TEAM_CREATORS", "staff")
if EASYAI_TEAM_CREATORS not in {"staff", "everyone"}:
    raise ImproperlyConfigured(f"EASYAI_TEAM_CREATORS={EASYAI_TEAM_CREATORS!r}: use staff or everyone")


def env_networks(name: str, default: list[str]) -> list[str]:
    """Comma-separated IP networks in CIDR form (a bare address is a /32 or /128)."""
    import ipaddress

    networks = env_list(name, default)
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {network!r} is not an IP network (use 10.0.0.0/8 or fd00::/8)") from None
    return networks


def env_rate(name: str, default: str) -> str:
    """A rate like 10/min: a count per second, min, hour or day."""
    rate = env_str(name, default).strip()
    count, _slash, period = rate.partition("/")
    if not count.isdigit() or int(count) < 1 or period not in {"s", "sec", "m", "min", "h", "hour", "d", "day"}:
        raise ImproperlyConfigured(f"{name}={rate!r} is not a rate (use 10/min, 100/hour...)")
    return rate


# Sign-in throttling (API token exchange, /accounts/login/, /admin/login/): attempts per client address and,
# separately, per user name. X-Forwarded-For is believed only from these proxies' addresses.
EASYAI_SIGNIN_THROTTLE = env_rate("EASYAI_SIGNIN_THROTTLE", os.environ.get("EASYAI_TOKEN_THROTTLE") or "10/min")
EASYAI_TRUSTED_PROXIES = env_networks("EASYAI_TRUSTED_PROXIES", [])

# guardian: object permissions are per-object grants only; a global permission
# never stands in for an object one (set explicitly, see STYLE.md).
GUARDIAN_GLOBAL_PERMISSIONS_CARRY_OVER = False
GUARDIAN_RAISE_403 = False
GUARDIAN_RENDER_403 = False
ANONYMOUS_USER_NAME = None

LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LANGUAGE_CODE = env_str("EASYAI_LANGUAGE", "en")
if LANGUAGE_CODE not in {code for code, _name in LANGUAGES}:
    raise ImproperlyConfigured(
        f"EASYAI_LANGUAGE={LANGUAGE_CODE!r} is not a language the portal ships "
        f"(use one of {', '.join(code for code, _name in LANGUAGES)})"
    )
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("EASYAI_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# `manage.py serve` collects the static files here when EASYAI_DEBUG=0; WhiteNoise serves them from here.
STATIC_ROOT = prepare.static_root()  # made by the entry points (easyai_site/prepare.py)

# --- API ---------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "teams.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env_int("EASYAI_API_PAGE_SIZE", 50, minimum=1),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Strict JSON (no key twice, bounded nesting, only encodable text): easyai_site/api.py.
    "DEFAULT_PARSER_CLASSES": [
        "easyai_site.api.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "easyai_site.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "EasyAI API",
    "DESCRIPTION": "Teams, jobs, logs and more. Authenticate with the header `Authorization: Token <token>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "JobStateEnum": "jobs.state.JobState",
        "TaskStateEnum": "jobs.models.Task.State",
        "SharePermissionEnum": "teams.services.SHARE_PERMISSIONS",
        "AppKindEnum": "apps.models.AppKind",
    },
}

# --- background work and live streams -----------------------------------------

REDIS_URL = redis_url("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# How often an open log or shell socket asks again whether its user may still use it (jobs/consumers.py).
EASYAI_WS_RECHECK_SECONDS = env_float("EASYAI_WS_RECHECK_SECONDS", 5.0, minimum=0.1)

# One cache all processes share (the scheduler and the workers coordinate through it).
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

Q_CLUSTER = {
    "name": "easyai",
    "workers": env_int("EASYAI_WORKERS", 2, minimum=1),
    # retry above timeout, so a task is never delivered twice while it still runs.
    "timeout": env_int("EASYAI_TASK_TIMEOUT", 300, minimum=10),
    "retry": env_int("EASYAI_TASK_TIMEOUT", 300, minimum=10) + 60,
    "max_attempts": 1,
    "catch_up": False,
    "ack_failures": True,
    # Successful tasks are not kept (sync passes run several times a second); failures are, in the admin.
    "save_limit": env_int("EASYAI_Q_SAVE_LIMIT", -1, minimum=-1),
    "poll": env_float("EASYAI_Q_POLL", 0.1, minimum=0.05),
    "guard_cycle": env_float("EASYAI_Q_GUARD_CYCLE", 0.5, minimum=0.1),
    "sync": env_bool("EASYAI_Q_SYNC", False),
}
if REDIS_URL and env_bool("EASYAI_Q_REDIS", True):
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- the platform ------------------------------------------------------------

EASYAI_STORAGE_ROOT = Path(env_str("EASYAI_STORAGE_ROOT", str(VAR_DIR / "storage"))).resolve()
EASYAI_LOCAL_STATE_DIR = Path(env_str("EASYAI_LOCAL_STATE_DIR", str(VAR_DIR / "local-backend"))).resolve()
# The official CRD and core schemas manifests are validated against: vendored (reduced) in the project.
EASYAI_K8S_SCHEMAS = Path(
    env_str("EASYAI_K8S_SCHEMAS", str(BASE_DIR / "clusters" / "backends" / "kubernetes" / "schemas"))
)
# Fernet key(s) for kubeconfigs at rest, never derived from SECRET_KEY: EASYAI_FIELD_KEY ("new,old" while
# rotating), else the file EASYAI_FIELD_KEY_FILE (default var/field_key, made with mode 0600 on first use).
EASYAI_FIELD_KEY = os.environ.get("EASYAI_FIELD_KEY", "")
EASYAI_FIELD_KEY_FILE = os.environ.get("EASYAI_FIELD_KEY_FILE", "") or str(VAR_DIR / "field_key")

# Notebooks and TensorBoard.
EASYAI_NOTEBOOK_IDLE_MINUTES = env_int("EASYAI_NOTEBOOK_IDLE_MINUTES", 60, minimum=1)
EASYAI_TENSORBOARD_IDLE_MINUTES = env_int("EASYAI_TENSORBOARD_IDLE_MINUTES", 30, minimum=1)
EASYAI_NOTEBOOK_OVERSELL = env_float("EASYAI_NOTEBOOK_OVERSELL", 4.0, minimum=1)
EASYAI_NOTEBOOK_IMAGE = env_str("EASYAI_NOTEBOOK_IMAGE", "quay.io/jupyter/scipy-notebook:latest")
EASYAI_VSCODE_IMAGE = env_str("EASYAI_VSCODE_IMAGE", "codercom/code-server:latest")
# code-server on the local backend (VS Code notebooks): empty = the virtual environment's (notebooks/vscode/install.sh), else PATH's.
EASYAI_CODE_SERVER = env_str("EASYAI_CODE_SERVER", "")
EASYAI_TENSORBOARD_IMAGE = env_str("EASYAI_TENSORBOARD_IMAGE", "tensorflow/tensorflow:latest")

# The model registry's store: empty, files under EASYAI_STORAGE_ROOT/models; or s3://bucket/prefix, an
# S3-compatible object store (credentials: boto3's AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION).
EASYAI_MODEL_STORE = env_str("EASYAI_MODEL_STORE", "")
# The object store's endpoint for MinIO or Ceph RGW (empty: AWS).
EASYAI_S3_ENDPOINT_URL = env_str("EASYAI_S3_ENDPOINT_URL", "")
# Model serving. A revision that has not answered its readiness check in this long failed to load.
EASYAI_SERVING_START_TIMEOUT = env_float("EASYAI_SERVING_START_TIMEOUT", 300.0, minimum=1)
# The image of a local revision's job on record (the local backend runs the model server from this host's
# Python); on Kubernetes KServe picks the runtime for the format, and a custom format names its own image.
EASYAI_MODEL_SERVER_IMAGE = env_str("EASYAI_MODEL_SERVER_IMAGE", "kserve/kserve-container:latest")
# The largest body a call to a served model may have (its JSON or binary tensors), refused with 413 past it.
EASYAI_SERVING_MAX_BODY_BYTES = env_int("EASYAI_SERVING_MAX_BODY_BYTES", 100 * 2**20, minimum=1024)
# KServe's deployment mode for new InferenceServices: Serverless (Knative: canary traffic splits) or RawDeployment.
EASYAI_KSERVE_DEPLOYMENT_MODE = env_str("EASYAI_KSERVE_DEPLOYMENT_MODE", "Serverless")

# Apps (Streamlit, Gradio, custom). The image of an app's pod on Kubernetes when the app names none: it must
# bring Python with Streamlit and Gradio (locally they come from requirements-apps.txt).
EASYAI_APP_IMAGE = env_str("EASYAI_APP_IMAGE", "python:3.11-slim")
# How long a new app sleeps after its last request (its owner may change it; 0 never sleeps).
EASYAI_APP_IDLE_MINUTES = env_int("EASYAI_APP_IDLE_MINUTES", 30, minimum=0)
# A run that has not answered its health check in this long failed (the app shows its log's last lines).
EASYAI_APP_START_TIMEOUT = env_float("EASYAI_APP_START_TIMEOUT", 300.0, minimum=1)
# The most an app's folder may hold.
EASYAI_APP_MAX_BYTES = env_int("EASYAI_APP_MAX_BYTES", 500 * 2**20, minimum=1024)

# A job using less than this share of what it requested (CPU, memory or GPU) is flagged on its page.
EASYAI_LOW_EFFICIENCY = env_float("EASYAI_LOW_EFFICIENCY", 0.3, minimum=0)

EASYAI_UPLOAD_MAX_BYTES = env_int("EASYAI_UPLOAD_MAX_BYTES", 10 * 2**30, minimum=1)
# A resumable upload (files/uploads.py) left untouched this long expires, and its bytes are removed.
EASYAI_UPLOAD_RESUME_HOURS = env_int("EASYAI_UPLOAD_RESUME_HOURS", 24, minimum=1)
# The most one dataset version may hold (files copied into datasets/{team}/{name}/{version}), and its files.
EASYAI_DATASET_MAX_BYTES = env_int("EASYAI_DATASET_MAX_BYTES", 100 * 2**30, minimum=1024)
EASYAI_DATASET_MAX_FILES = env_int("EASYAI_DATASET_MAX_FILES", 100_000, minimum=1)
# Any other request body (forms, API calls, job specs), refused with 413 before it is read (easyai_site/limits.py).
EASYAI_MAX_BODY_BYTES = env_int("EASYAI_MAX_BODY_BYTES", 5 * 2**20, minimum=1024)

# One bulk sync pass per cluster re-checks every active job (unknown, pending and running alike) at a
# constant cost in backend calls, so the original per-job cadences (unknown every 10 s, running every
# 10 min) are met many times over. A cluster whose pass fails backs off (RETRY_BASE doubling to RETRY_MAX).
EASYAI_SYNC_INTERVAL = env_float("EASYAI_SYNC_INTERVAL", 2.0, minimum=0.1)
# A local cluster's pass only reads files on this host: it runs often, so a finished task is seen at once.
EASYAI_LOCAL_SYNC_INTERVAL = env_float("EASYAI_LOCAL_SYNC_INTERVAL", 0.25, minimum=0.1)
EASYAI_RETRY_BASE = env_float("EASYAI_RETRY_BASE", 5.0, minimum=0.01)
EASYAI_RETRY_MAX = env_float("EASYAI_RETRY_MAX", 600.0, minimum=0.01)
EASYAI_STOP_GRACE = env_float("EASYAI_STOP_GRACE", 10.0, minimum=0)
EASYAI_MISSING_GRACE = env_float("EASYAI_MISSING_GRACE", 60.0, minimum=0)
# How long a finished job's backend records (process state files, cluster objects) are kept for debugging.
EASYAI_CLEANUP_AFTER = env_float("EASYAI_CLEANUP_AFTER", 3600.0, minimum=0)

# Monitoring: what tasks use (monitoring/sampler.py, retention.py) and the portal's /metrics (metrics.py).
# Each cluster with running tasks is sampled this often (seconds): one backend call per cluster and pass.
EASYAI_USAGE_SAMPLE_SECONDS = env_float("EASYAI_USAGE_SAMPLE_SECONDS", 10.0, minimum=1)
# Raw samples are kept this many hours, then become one-minute points; those are kept this many days, then
# become hourly points, kept this many days (0: for ever). Downsampling runs every EASYAI_USAGE_RETENTION_SECONDS.
EASYAI_USAGE_RAW_HOURS = env_float("EASYAI_USAGE_RAW_HOURS", 24.0, minimum=0.1)
EASYAI_USAGE_MINUTE_DAYS = env_float("EASYAI_USAGE_MINUTE_DAYS", 7.0, minimum=0.1)
EASYAI_USAGE_HOURLY_DAYS = env_float("EASYAI_USAGE_HOURLY_DAYS", 400.0, minimum=0)
EASYAI_USAGE_RETENTION_SECONDS = env_float("EASYAI_USAGE_RETENTION_SECONDS", 3600.0, minimum=10)
# /metrics answers a caller with "Authorization: Bearer <token>"; without a token set, loopback callers only.
EASYAI_METRICS_TOKEN = env_str("EASYAI_METRICS_TOKEN")

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "easyai@localhost")
EASYAI_NOTIFY_EMAIL = env_bool("EASYAI_NOTIFY_EMAIL", False)
EASYAI_NOTIFY_WEBHOOKS = env_bool("EASYAI_NOTIFY_WEBHOOKS", False)
# Team webhooks go to public addresses only; a platform admin may allow networks here (CIDRs).
EASYAI_WEBHOOK_ALLOWED_NETWORKS = env_networks("EASYAI_WEBHOOK_ALLOWED_NETWORKS", [])
# Alerts (monitoring/alerts.py), through the e-mail and webhook channels above. A cluster's settings may
# change the first three (idle_gpu_threshold, idle_gpu_minutes, pending_alert_minutes; 0 minutes: off).
EASYAI_IDLE_GPU_THRESHOLD = env_float("EASYAI_IDLE_GPU_THRESHOLD", 5.0, minimum=0)
EASYAI_IDLE_GPU_MINUTES = env_float("EASYAI_IDLE_GPU_MINUTES", 30.0, minimum=0)
EASYAI_PENDING_ALERT_MINUTES = env_float("EASYAI_PENDING_ALERT_MINUTES", 30.0, minimum=0)
# Platform admins hear of a cluster once its sync has failed this many passes in a row, and when it recovers.
EASYAI_SYNC_ALERT_FAILURES = env_int("EASYAI_SYNC_ALERT_FAILURES", 3, minimum=1)
# How often the alerts pass runs (seconds).
EASYAI_ALERT_SCAN_SECONDS = env_float("EASYAI_ALERT_SCAN_SECONDS", 60.0, minimum=1)

if not DEBUG:
    # Secure cookies when the portal is served over HTTPS; a laptop's http://127.0.0.1 would otherwise lose them.
    SESSION_COOKIE_SECURE = env_bool("EASYAI_SECURE_COOKIES", SITE_URL.startswith("https://"))
    CSRF_COOKIE_SECURE = env_bool("EASYAI_SECURE_COOKIES", SITE_URL.startswith("https://"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("EASYAI_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # The workers' queue says "Enqueued", "processing" and "Processed" for every task (several a second from
        # the clock's passes): warnings and failures only, unless asked.
        "django-q": {"level": env_str("EASYAI_QUEUE_LOG_LEVEL", "WARNING")},
    },
}


# --- sign-on (LDAP, OIDC, directory groups) ---
# The backends come from EASYAI_AUTH_BACKENDS (accounts.ldap.LDAPBackend, accounts.oidc.OIDCBackend) and their
# AUTH_LDAP_* / OIDC_* settings from EASYAI_SETTINGS_FILE (read below, so it may change any of these defaults).
# How often the clock runs the LDAP directory sync (seconds; 0: only at sign-in): accounts/schedule.py.
EASYAI_DIRECTORY_SYNC_SECONDS = env_int("EASYAI_DIRECTORY_SYNC_SECONDS", 900, minimum=0)
# The name on the sign-in page's button ("Sign in with Company SSO").
EASYAI_OIDC_PROVIDER_NAME = env_str("EASYAI_OIDC_PROVIDER_NAME", "")
# mozilla-django-oidc: PKCE on, the ID token kept in the session (sign-out ends the provider's session with it),
# scopes that carry name, e-mail and groups, timeouts so a provider that hangs cannot hold a sign-in for ever.
OIDC_USE_PKCE = True
OIDC_USE_NONCE = True
OIDC_STORE_ID_TOKEN = True
OIDC_RP_SCOPES = "openid email profile groups"
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_TIMEOUT = 10
OIDC_GROUPS_CLAIM = "groups"
# --- end of sign-on ---


# --- site-specific settings ----------------------------------------------------

# A Python file run last, for what environment variables cannot carry (an LDAP search, OIDC endpoints,
# extra apps). It sees every setting above and the env_* readers; the UPPER_CASE names it assigns are settings.
EASYAI_SETTINGS_FILE = env_str("EASYAI_SETTINGS_FILE")
if EASYAI_SETTINGS_FILE:
    _settings_path = Path(EASYAI_SETTINGS_FILE).expanduser()
    try:
        _settings_source = _settings_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ImproperlyConfigured(f"EASYAI_SETTINGS_FILE={EASYAI_SETTINGS_FILE!r} cannot be read: {exc}") from exc
    _settings_namespace = {name: value for name, value in globals().items() if name.isupper()}
    _settings_namespace.update(
        __file__=str(_settings_path),
        __name__="easyai_site_settings_file",
        env_str=env_str,
        env_bool=env_bool,
        env_int=env_int,
        env_float=env_float,
        env_list=env_list,
    )
    exec(compile(_settings_source, str(_settings_path), "exec"), _settings_namespace)
    globals().update({name: value for name, value in _settings_namespace.items() if name.isupper()})
