"""The sharing API: who one object is shared with, and sharing it with (or taking it back from) one user.

Which kinds of object can be shared is ``teams.sharing``'s registry, filled by the apps that own them.
"""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from django.db.models import Model
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from teams import permissions, services, sharing
from teams.api import _parse, _parse_data
from teams.permissions import Action

# --- sharing one object with someone outside its team ---------------------------------------


class ShareTargetSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=[], help_text=_("What is shared."))
    id = serializers.CharField(
        max_length=64, help_text=_("The job's id (j-…), or the experiment's or notebook's number.")
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Read when used, not when imported: the apps fill the registry in their ready().
        self.fields["kind"].choices = sharing.kinds()

    def validate(self, attrs: dict) -> dict:
        if not re.fullmatch(sharing.shareable(attrs["kind"]).id_pattern, attrs["id"]):
            raise serializers.ValidationError(
                {"id": [_("This is not the id of a %(kind)s.") % {"kind": attrs["kind"]}]}
            )
        return attrs


class ShareSerializer(ShareTargetSerializer):
    user = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.filter(is_active=True),
        help_text=_("The username of the person the object is shared with."),
    )
    permission = serializers.ChoiceField(
        choices=services.SHARE_PERMISSIONS,
        help_text=_("view: see it, its logs and outputs; change: also stop, delete and rerun it."),
    )


class UnshareSerializer(ShareSerializer):
    permission = serializers.ChoiceField(
        choices=services.SHARE_PERMISSIONS,
        default="view",
        help_text=_("view (the default) takes back every grant; change takes back change only."),
    )


class GrantSerializer(serializers.Serializer):
    user = serializers.CharField()
    permissions = serializers.ListField(child=serializers.ChoiceField(choices=services.SHARE_PERMISSIONS))


class SharesSerializer(serializers.Serializer):
    kind = serializers.CharField()
    id = serializers.CharField()
    grants = GrantSerializer(many=True)


# Read on import: this module is imported with the URLs, once every app's ready() has filled the registry.
SHARE_TARGET = [
    OpenApiParameter("kind", str, enum=sharing.kinds(), required=True, description=_("What is shared.")),
    OpenApiParameter(
        "id", str, required=True, description=_("The job's id (j-…), or the experiment's or notebook's number.")
    ),
]


class ShareView(APIView):
    """Per-object grants: the owner, a team admin or a platform admin shares one object with anyone."""

    def _target(self, request: Request, data: dict) -> Model:
        shareable = sharing.shareable(data["kind"])
        return permissions.get_or_404(
            shareable.queryset(), request.user, Action.SHARE, **{shareable.lookup: data["id"]}
        )

    def _shares(self, data: dict, obj: Model) -> dict:
        grants = [{"user": user, "permissions": perms} for user, perms in permissions.grants_on(obj).items()]
        return SharesSerializer({"kind": data["kind"], "id": data["id"], "grants": grants}).data

    @extend_schema(
        summary="Who an object is shared with (its owner and team admins)",
        parameters=SHARE_TARGET,
        responses=SharesSerializer,
    )
    def get(self, request: Request) -> Response:
        data = _parse_data(ShareTargetSerializer, request.query_params)
        return Response(self._shares(data, self._target(request, data)))

    @extend_schema(
        summary="Share an object with a user (its owner and team admins)",
        request=ShareSerializer,
        responses=SharesSerializer,
    )
    def post(self, request: Request) -> Response:
        data = _parse(ShareSerializer, request)
        obj = self._target(request, data)
        services.object_share(obj=obj, grantee=data["user"], permission=data["permission"])
        return Response(self._shares(data, obj))

    @extend_schema(
        summary="Take back a grant (its owner and team admins); the fields come as query parameters or a JSON body",
        parameters=[
            *SHARE_TARGET,
            OpenApiParameter("user", str, required=True, description=_("The username whose grant is taken back.")),
            OpenApiParameter(
                "permission",
                str,
                enum=services.SHARE_PERMISSIONS,
                description=_("view (the default) takes back every grant; change takes back change only."),
            ),
        ],
        request=None,
        responses={204: OpenApiResponse(description=_("Taken back."))},
    )
    def delete(self, request: Request) -> Response:
        data = _parse_data(UnshareSerializer, request.data or request.query_params)
        obj = self._target(request, data)
        services.object_unshare(obj=obj, grantee=data["user"], permission=data["permission"])
        return Response(status=status.HTTP_204_NO_CONTENT)
