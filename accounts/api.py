"""The API of directory sign-on: the CLI exchanges its one-time code and verifier for a token."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services


class CliTokenRequestSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=200, help_text="The one-time code the portal sent to the CLI's loopback.")
    code_verifier = serializers.CharField(min_length=43, max_length=128, help_text="The CLI's PKCE verifier.")
    name = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)


class CliTokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True)
    prefix = serializers.CharField(read_only=True)
    username = serializers.CharField(read_only=True)


class CliTokenView(APIView):
    """`easyai login --sso`'s last step: no password, the code the browser passed on and the CLI's verifier."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Exchange a one-time sign-in code (easyai login --sso) and its PKCE verifier for a new API token",
        request=CliTokenRequestSerializer,
        responses={200: CliTokenSerializer},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = CliTokenRequestSerializer(data=request.data if isinstance(request.data, dict) else {})
        data.is_valid(raise_exception=True)
        # A refused code is the service's ValidationError: the API's handler answers 400 with its field.
        token, key = services.cli_grant_redeem(
            code=data.validated_data["code"],
            verifier=data.validated_data["code_verifier"],
            name=data.validated_data["name"],
        )
        response = Response({"token": key, "prefix": token.prefix, "username": token.user.get_username()})
        response["Cache-Control"] = "no-store"
        return response
