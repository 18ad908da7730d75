"""The accounts API: the CLI exchanges its one-time sign-in code and verifier for a token; users keep their SSH
public keys (``/api/v1/ssh-keys/``)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.models import SSHKey


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


# --- SSH keys ---------------------------------------------------------------------------------


class SSHKeySerializer(serializers.ModelSerializer):
    type = serializers.CharField(source="key_type", read_only=True, help_text="The key's type, e.g. ssh-ed25519.")

    class Meta:
        model = SSHKey
        fields = ["id", "name", "type", "fingerprint", "public_key", "created_at", "last_used_at"]
        read_only_fields = fields


class SSHKeyAddSerializer(serializers.Serializer):
    public_key = serializers.CharField(
        max_length=20000,
        trim_whitespace=False,
        help_text="One OpenSSH public key line (the .pub file): ssh-ed25519, ecdsa-sha2-nistp256/384/521, "
        "ssh-rsa of 2048 bits or more, sk-ssh-ed25519@openssh.com or sk-ecdsa-sha2-nistp256@openssh.com.",
    )
    name = serializers.CharField(
        max_length=100,
        required=False,
        default="",
        allow_blank=True,
        help_text="What the key is (your laptop, say); left out, the key's comment or its fingerprint.",
    )


KEY_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The SSH key's id.")


class SSHKeyListView(generics.ListAPIView):
    """Your SSH public keys: a task's SSH server accepts these from you (``easyai ssh``)."""

    serializer_class = SSHKeySerializer

    def get_queryset(self):
        return selectors.ssh_keys_of(self.request.user)

    @extend_schema(summary="Your SSH public keys")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(summary="Add an SSH public key", request=SSHKeyAddSerializer, responses={201: SSHKeySerializer})
    def post(self, request: Request) -> Response:
        data = SSHKeyAddSerializer(data=request.data if isinstance(request.data, dict) else {})
        data.is_valid(raise_exception=True)
        key = services.ssh_key_add(
            user=request.user, public_key=data.validated_data["public_key"], name=data.validated_data["name"]
        )
        return Response(SSHKeySerializer(key).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[KEY_ID])
class SSHKeyDetailView(generics.GenericAPIView):
    serializer_class = SSHKeySerializer

    def get_queryset(self):
        return selectors.ssh_keys_of(self.request.user)

    @extend_schema(summary="One of your SSH public keys", responses=SSHKeySerializer)
    def get(self, request: Request, id: int) -> Response:
        key = self.get_queryset().filter(pk=id).first()
        if key is None:
            raise Http404
        return Response(SSHKeySerializer(key).data)

    @extend_schema(
        summary="Remove one of your SSH public keys", responses={204: OpenApiResponse(description="Removed.")}
    )
    def delete(self, request: Request, id: int) -> Response:
        try:
            services.ssh_key_remove(user=request.user, key_id=id)
        except ValidationError:
            raise Http404 from None  # another user's key is as absent as one that never was
        return Response(status=status.HTTP_204_NO_CONTENT)
