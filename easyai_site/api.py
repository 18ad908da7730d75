"""API helpers shared by every app: the JSON parser, the exception handler and error shapes."""

from __future__ import annotations

import copy
import logging

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from rest_framework import parsers, serializers, status
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.response import Response

from jobs.spec import document_problem
from jobs.spec.text import strict_json_loads
from teams import permissions
from teams.exceptions import ActionRefused

log = logging.getLogger(__name__)

def raise_validation(exc: DjangoValidationError):
    """A service's ValidationError as the API's 400: the messages under their fields, or under "detail"."""
    raise ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages})


def team_named(request, slug: str | None):
    """The team a request body names (one the caller may see), or the caller's current team when it names none."""
    if slug:
        team = permissions.visible_teams(request.user).filter(slug=slug).first()
        if team is None:
            raise ValidationError({"team": [_("No team %(slug)r that you belong to.") % {"slug": slug}]})
        return team
    return request.team


# Seconds a client is asked to wait when the database is unavailable: a restart or a failover takes about that.
RETRY_AFTER_S = 5


class BuiltOnceFields:
    """A ModelSerializer mixin: its fields are built from the model once per class, then copied for each
    instance. DRF builds them for every instance, most of a small answer's cost. A plain field is copied
    shallow (binding it sets only its own attributes), a nested serializer deep, as DRF copies declared ones."""

    def get_fields(self):
        cls = type(self)
        built = cls.__dict__.get("_built_fields")
        if built is None:
            built = super().get_fields()
            cls._built_fields = built
        return {
            name: copy.deepcopy(field) if isinstance(field, serializers.BaseSerializer) else copy.copy(field)
            for name, field in built.items()
        }


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, strict where Python's json is lenient: a key given twice, NaN/Infinity, nesting
    deeper than the spec's limit and text UTF-8 cannot carry (a lone surrogate, ``"\\ud800"``) are refused
    with 400 before any view sees the data, as the spec's YAML reader refuses them."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", "utf-8")
        try:
            text = stream.read().decode(encoding) if stream is not None else ""
            data = strict_json_loads(text)
        except RecursionError:
            raise ParseError(_("JSON parse error - nested too deeply.")) from None
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError and the hooks' errors are ValueErrors
            raise ParseError(_("JSON parse error - %(error)s") % {"error": str(exc)[:200]}) from None
        problem = document_problem(data)
        if problem is not None:
            path, message = problem
            raise ParseError(_("JSON parse error - %(path)s %(message)s.") % {"path": path, "message": message})
        return data


def database_unavailable(exc: BaseException) -> bool:
    """Whether a database error means the database cannot be reached (answer 503), not a bad query (500)."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    for connection in connections.all(initialized_only=True):
        # No connection object left (connecting failed), or one the server no longer answers on.
        if connection.connection is None:
            return True
        try:
            if not connection.is_usable():
                return True
        except DatabaseError:
            return True
    return False


def _forget_broken_connections() -> None:
    for connection in connections.all(initialized_only=True):
        try:
            connection.close_if_unusable_or_obsolete()
        except DatabaseError:
            pass


def unavailable_response(request: HttpRequest | None = None) -> HttpResponse:
    """503 with Retry-After: the request was refused whole (its transaction never committed)."""
    _forget_broken_connections()
    detail = _("The database is unavailable; nothing was changed. Try again shortly.")
    if request is not None and not request.path.startswith("/api/"):
        response: HttpResponse = HttpResponse(detail, status=503, content_type="text/plain; charset=utf-8")
    else:
        response = JsonResponse({"detail": detail}, status=503)
    response["Retry-After"] = str(RETRY_AFTER_S)
    return response


def exception_handler(exc, context):
    """DRF's handler, plus Django's ValidationError answered as 400 with field names, a refused action
    (``ActionRefused``) as 409 with its message, and an unreachable database as 503 with Retry-After."""
    if isinstance(exc, ActionRefused):
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, DatabaseError) and database_unavailable(exc):
        log.warning("database unavailable: %s", exc)
        _forget_broken_connections()
        return Response(
            {"detail": _("The database is unavailable; nothing was changed. Try again shortly.")},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            exc = ValidationError(exc.message_dict)
        else:
            exc = ValidationError({"detail": exc.messages})
    # Imported here: DRF's views read DEFAULT_PARSER_CLASSES (this module) while they are imported.
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is None and isinstance(exc, Http404):
        return Response({"detail": _("Not found.")}, status=status.HTTP_404_NOT_FOUND)
    return response


class DatabaseUnavailableMiddleware:
    """Pages (and anything outside DRF) answer 503 with Retry-After when the database cannot be reached."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if isinstance(exc, DatabaseError) and database_unavailable(exc):
            log.warning("database unavailable on %s: %s", request.path, exc)
            return unavailable_response(request)
        return None
