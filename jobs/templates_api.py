"""The job templates API (``/api/v1/templates/``): list, make (from a spec or a job), read, delete, and submit a
template with values. Who may do what is ``jobs.templates``' answer (404 to outsiders)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from easyai_site.api import raise_validation
from jobs import templates
from jobs.api import JobDetailSerializer
from jobs.models import Job, JobTemplate
from teams import permissions


class JobTemplateSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    can_change = serializers.SerializerMethodField()

    class Meta:
        model = JobTemplate
        fields = [
            "id", "team", "name", "description", "framework", "fields", "spec", "owner", "can_change", "created_at",
            "updated_at",
        ]  # fmt: skip

    def get_can_change(self, template: JobTemplate) -> bool:
        return templates.can_change(self.context["request"].user, template)


class JobTemplateCreateSerializer(serializers.Serializer):
    team = serializers.CharField(
        required=False, allow_blank=True, help_text="team slug; default: your current team; 'platform': every team's"
    )
    name = serializers.CharField(max_length=63)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    spec = serializers.JSONField(required=False, help_text="a job spec with {{field}} placeholders in its strings")
    fields = serializers.JSONField(
        required=False,
        default=dict,
        help_text="name -> {description, default}; with from_job: name -> {path, text?, description}",
    )
    from_job = serializers.CharField(required=False, help_text="a job id: save its spec, the fields naming its values")


class TemplateSubmitSerializer(serializers.Serializer):
    values = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False, default=dict)
    team = serializers.CharField(required=False, allow_blank=True, help_text="team slug; default: the template's")
    dry_run = serializers.BooleanField(required=False, default=False)


class JobTemplateViewSet(viewsets.GenericViewSet):
    """Job templates: a team's (its members see them) and the platform's (everyone sees them)."""

    serializer_class = JobTemplateSerializer
    queryset = JobTemplate.objects.none()

    def get_queryset(self):
        queryset = templates.templates_visible(self.request.user).select_related("team", "owner")
        for param, lookup in (("name", "name"), ("framework", "framework")):
            if self.request.query_params.get(param):
                queryset = queryset.filter(**{lookup: self.request.query_params[param]})
        team = self.request.query_params.get("team")
        if team == "platform":
            queryset = queryset.filter(team__isnull=True)
        elif team:
            queryset = queryset.filter(team__slug=team) | queryset.filter(team__isnull=True)
        return queryset.order_by("name", "id")

    def _get(self, pk, *, change: bool = False) -> JobTemplate:
        if not str(pk).isdigit():
            from django.http import Http404

            raise Http404(_("Not found."))
        return templates.template_get(self.request.user, change=change, pk=int(pk))

    @extend_schema(
        parameters=[
            OpenApiParameter("team", str, description="a team's slug (its templates and the platform's), or platform"),
            OpenApiParameter("name", str),
            OpenApiParameter("framework", str),
        ],
        responses=JobTemplateSerializer(many=True),
    )
    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(JobTemplateSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(request=JobTemplateCreateSerializer, responses={201: JobTemplateSerializer})
    def create(self, request):
        data = JobTemplateCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            if values.get("from_job"):
                job = (
                    permissions.restrict(Job.objects.filter(deleted=False), request.user)
                    .select_related("team")
                    .filter(public_id=values["from_job"])
                    .first()
                )
                if job is None:
                    raise ValidationError(
                        {"from_job": [_("No job %(job)r that you can see.") % {"job": values["from_job"]}]}
                    )
                template = templates.template_from_job(
                    user=request.user, job=job, name=values["name"], fields=values["fields"],
                    description=values["description"],
                )  # fmt: skip
            else:
                if "spec" not in values:
                    raise ValidationError({"spec": [_("Give a spec, or from_job.")]})
                slug = values.get("team") or ""
                if slug == "platform":
                    team = None
                elif slug:
                    team = permissions.visible_teams(request.user).filter(slug=slug).first()
                    if team is None:
                        raise ValidationError({"team": [_("No team %(slug)r that you belong to.") % {"slug": slug}]})
                else:
                    team = getattr(request, "team", None) or None
                    if team is None:
                        raise ValidationError({"team": [_("You are in no team: name one.")]})
                template = templates.template_create(
                    user=request.user, team=team, name=values["name"], spec=values["spec"], fields=values["fields"],
                    description=values["description"],
                )  # fmt: skip
        except DjangoValidationError as exc:
            raise_validation(exc)
        return Response(
            JobTemplateSerializer(template, context={"request": request}).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(responses=JobTemplateSerializer)
    def retrieve(self, request, pk=None):
        return Response(JobTemplateSerializer(self._get(pk), context={"request": request}).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        templates.template_delete(user=request.user, template=self._get(pk, change=True))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=TemplateSubmitSerializer, responses={201: JobDetailSerializer, 200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        """Fill in the template's fields and submit the spec (``dry_run``: validate and show it, record nothing)."""
        template = self._get(pk)
        data = TemplateSubmitSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        slug = data.validated_data.get("team") or ""
        team = None
        if slug:
            team = permissions.visible_teams(request.user).filter(slug=slug).first()
            if team is None:
                raise ValidationError({"team": [_("No team %(slug)r that you belong to.") % {"slug": slug}]})
        try:
            result = templates.template_submit(
                user=request.user, template=template, values=data.validated_data["values"], team=team,
                dry_run=data.validated_data["dry_run"],
            )  # fmt: skip
        except DjangoValidationError as exc:
            raise_validation(exc)
        if data.validated_data["dry_run"]:
            return Response(
                {"spec": result.spec, "description": result.description.to_dict(), "manifests": result.rendered}
            )
        return Response(
            JobDetailSerializer(result, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/api/v1/jobs/{result.public_id}/"},
        )
