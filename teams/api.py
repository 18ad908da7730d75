"""The teams API: teams, members, the signed-in user and token exchange (sharing one object: teams/sharing_api.py)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import authenticate
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from teams import selectors, services, signin
from teams.models import MAX_LEASE_HOURS, Membership, Team
from teams.permissions import get_team_or_404, team_role
from teams.services import TOKEN_MAX_DAYS

# --- serializers ---------------------------------------------------------------------


class QuotaSerializer(serializers.Serializer):
    """A team's quota on one cluster (a clusters.Quota row, read through the team's ``quotas``)."""

    cluster = serializers.CharField(source="cluster.name", read_only=True)
    cpu_milli = serializers.IntegerField(read_only=True, min_value=0, label=_("CPU (millicores)"))
    memory_bytes = serializers.IntegerField(read_only=True, min_value=0, label=_("memory (bytes)"))
    gpu = serializers.IntegerField(read_only=True, min_value=0, label=_("GPUs"))


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role", "created_at"]
        read_only_fields = fields


class TeamSerializer(serializers.ModelSerializer):
    member_count = serializers.IntegerField(read_only=True)
    role = serializers.SerializerMethodField(
        help_text=_("Your role in the team; null when you see it as a platform admin.")
    )

    class Meta:
        model = Team
        fields = [
            "slug",
            "name",
            "description",
            "webhook_url",
            "notebook_max_lease_hours",
            "member_count",
            "role",
            "created_at",
        ]
        read_only_fields = fields

    def get_role(self, team: Team) -> str | None:
        return team_role(self.context["request"].user, team)


class TeamDetailSerializer(TeamSerializer):
    members = MemberSerializer(source="memberships", many=True, read_only=True)
    quotas = QuotaSerializer(many=True, read_only=True)

    class Meta(TeamSerializer.Meta):
        fields = [*TeamSerializer.Meta.fields, "members", "quotas"]
        read_only_fields = fields


class TeamCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    slug = serializers.CharField(
        max_length=63,
        help_text=_("The team's Kubernetes namespace: lowercase letters, digits and '-', at most 63 characters."),
    )
    description = serializers.CharField(required=False, allow_blank=True, default="")


class TeamUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    webhook_url = serializers.URLField(required=False, allow_blank=True)
    notebook_max_lease_hours = serializers.IntegerField(required=False, min_value=1, max_value=MAX_LEASE_HOURS)

    def validate(self, attrs: dict) -> dict:
        # Refused rather than ignored: a client that sends a slug expects it to take effect.
        if isinstance(self.initial_data, dict) and "slug" in self.initial_data:
            raise serializers.ValidationError(
                {"slug": [_("A team's slug names its namespace on every cluster; it cannot be changed.")]}
            )
        return attrs


class MemberAddSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.MEMBER)


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Membership.Role.choices)


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(
        style={"input_type": "password"}, trim_whitespace=False, write_only=True, max_length=4096
    )
    name = serializers.CharField(
        max_length=100, required=False, default="", allow_blank=True, help_text=_("What the token is for.")
    )
    expires_in_days = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        max_value=TOKEN_MAX_DAYS,
        help_text=_("The token stops working after this many days; left out, it never expires."),
    )


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True, help_text=_("The key, shown only this once: keep it."))
    prefix = serializers.CharField(read_only=True, help_text=_("How the profile page and the admin name the token."))
    expires_at = serializers.DateTimeField(read_only=True, allow_null=True)


class MeTeamSerializer(serializers.Serializer):
    slug = serializers.CharField(source="team.slug")
    name = serializers.CharField(source="team.name")
    role = serializers.ChoiceField(choices=Membership.Role.choices)


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    is_staff = serializers.BooleanField(help_text=_("Platform admins see and manage every team."))
    current_team = serializers.CharField(allow_null=True, help_text=_("The slug of the team you work in."))
    teams = MeTeamSerializer(many=True)


def _parse(serializer_class: type[serializers.Serializer], request: Request, **kwargs) -> dict:
    return _parse_data(serializer_class, request.data, **kwargs)


def _parse_data(serializer_class: type[serializers.Serializer], data, **kwargs) -> dict:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


SLUG = OpenApiParameter("slug", str, OpenApiParameter.PATH, description=_("The team's slug."))
USERNAME = OpenApiParameter("username", str, OpenApiParameter.PATH, description=_("The member's username."))


# --- views -----------------------------------------------------------------------------


class TeamListView(generics.ListAPIView):
    serializer_class = TeamSerializer

    def get_queryset(self):
        return selectors.teams_for_list(self.request.user)

    @extend_schema(summary="Teams you belong to (all teams for platform admins)")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Create a team; you become its admin",
        request=TeamCreateSerializer,
        responses={201: TeamDetailSerializer},
    )
    def post(self, request: Request) -> Response:
        data = _parse(TeamCreateSerializer, request)
        team = services.team_create(creator=request.user, **data)
        return Response(_team_detail_data(request, team), status=status.HTTP_201_CREATED)


def _team_detail_data(request: Request, team: Team) -> dict:
    team = selectors.team_with_details(request.user, team.pk)
    return TeamDetailSerializer(team, context={"request": request}).data


@extend_schema(parameters=[SLUG])
class TeamDetailView(APIView):
    @extend_schema(summary="One team with its members and quotas", responses=TeamDetailSerializer)
    def get(self, request: Request, slug: str) -> Response:
        return Response(_team_detail_data(request, get_team_or_404(request.user, slug)))

    @extend_schema(summary="Change a team (team admins)", request=TeamUpdateSerializer, responses=TeamDetailSerializer)
    def patch(self, request: Request, slug: str) -> Response:
        team = get_team_or_404(request.user, slug, admin=True)
        data = _parse(TeamUpdateSerializer, request)
        team = services.team_update(team=team, **data)
        return Response(_team_detail_data(request, team))


@extend_schema(parameters=[SLUG])
class TeamMemberListView(generics.ListAPIView):
    serializer_class = MemberSerializer

    def get_queryset(self):
        return selectors.members_of(get_team_or_404(self.request.user, self.kwargs["slug"]))

    @extend_schema(summary="The team's members")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(summary="Add a member (team admins)", request=MemberAddSerializer, responses={201: MemberSerializer})
    def post(self, request: Request, slug: str) -> Response:
        team = get_team_or_404(request.user, slug, admin=True)
        data = _parse(MemberAddSerializer, request)
        membership = services.membership_add(team=team, **data)
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[SLUG, USERNAME])
class TeamMemberDetailView(APIView):
    @extend_schema(
        summary="Change a member's role (team admins)", request=MemberRoleSerializer, responses=MemberSerializer
    )
    def patch(self, request: Request, slug: str, username: str) -> Response:
        team = get_team_or_404(request.user, slug, admin=True)
        data = _parse(MemberRoleSerializer, request)
        membership = services.membership_change_role(team=team, username=username, role=data["role"])
        return Response(MemberSerializer(membership).data)

    @extend_schema(summary="Remove a member (team admins)", responses={204: OpenApiResponse(description=_("Removed."))})
    def delete(self, request: Request, slug: str, username: str) -> Response:
        team = get_team_or_404(request.user, slug, admin=True)
        services.membership_remove(team=team, username=username)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SignInThrottle(BaseThrottle):
    """Limits password guessing: every exchange counts, per real client address and per user name (teams.signin)."""

    def allow_request(self, request: Request, view: APIView) -> bool:
        data = request.data if isinstance(request.data, dict) else {}
        username = data.get("username")
        self.retry_after = signin.attempt(request._request, username if isinstance(username, str) else None)
        return self.retry_after is None

    def wait(self) -> float | None:
        return self.retry_after


class TokenExchangeView(APIView):
    # No authentication: a stale token in the header must not stop a client from getting a new one.
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [SignInThrottle]

    @extend_schema(
        summary="Exchange a username and password for a new API token (its key is shown only in this answer)",
        request=TokenRequestSerializer,
        responses={200: TokenSerializer},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = _parse(TokenRequestSerializer, request)
        user = authenticate(request._request, username=data["username"], password=data["password"])
        if user is None or not user.is_active:
            raise serializers.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: [_("Wrong username or password.")]})
        days = data["expires_in_days"]
        token, key = services.token_create(
            user=user,
            name=data["name"] or _("Signed in through the API"),
            expires_at=timezone.now() + timedelta(days=days) if days else None,
        )
        response = Response({"token": key, "prefix": token.prefix, "expires_at": token.expires_at})
        response["Cache-Control"] = "no-store"
        return response


class MeView(APIView):
    @extend_schema(summary="You, your teams with your roles, and your current team", responses=MeSerializer)
    def get(self, request: Request) -> Response:
        user = request.user
        current = selectors.current_team_for(user)
        data = {
            "id": user.pk,
            "username": user.get_username(),
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "is_staff": user.is_staff,
            "current_team": current.slug if current else None,
            "teams": selectors.memberships_of(user),
        }
        return Response(MeSerializer(data).data)
