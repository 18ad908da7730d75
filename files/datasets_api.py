"""The datasets API: /api/v1/datasets/ (list, make a version), a dataset with its versions, one version; deletes.

Outsiders get 404 on every object; a team-mate who is neither the owner nor a team admin 403 on a delete; a
version in use by an active job 409 (``DatasetInUse``, through the site's exception handler).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from assets.models import Dataset, DatasetVersion
from easyai_site.api import JSONParser, raise_validation, team_named
from files import datasets


class DatasetVersionSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.name", read_only=True)
    team = serializers.CharField(source="dataset.team.slug", read_only=True)
    ref = serializers.SerializerMethodField(help_text="what a job spec's datasets list names: name@version")
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    mount_path = serializers.SerializerMethodField(help_text="where every task of a job sees it")
    variable = serializers.SerializerMethodField(help_text="the environment variable that holds its path")

    class Meta:
        model = DatasetVersion
        fields = [
            "team", "dataset", "version", "ref", "description", "size_bytes", "file_count", "digest", "source",
            "source_ref", "created_by", "created_at", "mount_path", "variable",
        ]  # fmt: skip
        read_only_fields = fields

    def get_ref(self, obj: DatasetVersion) -> str:
        return f"{obj.dataset.name}@{obj.version}"

    def get_mount_path(self, obj: DatasetVersion) -> str:
        return f"/datasets/{obj.dataset.name}"

    def get_variable(self, obj: DatasetVersion) -> str:
        from clusters.backends.contract.storage import dataset_variable

        return dataset_variable(obj.dataset.name)


class DatasetSerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.slug", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)
    version_count = serializers.IntegerField(read_only=True)
    latest_version = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Dataset
        fields = ["team", "name", "description", "owner", "created_at", "version_count", "latest_version"]
        read_only_fields = fields


class DatasetDetailSerializer(DatasetSerializer):
    versions = DatasetVersionSerializer(many=True, read_only=True)
    in_use_by = serializers.SerializerMethodField(help_text="active jobs that mount any of its versions")

    class Meta(DatasetSerializer.Meta):
        fields = [*DatasetSerializer.Meta.fields, "versions", "in_use_by"]
        read_only_fields = fields

    def get_in_use_by(self, obj: Dataset) -> list[str]:
        return datasets.jobs_using(obj)


class DatasetCreateSerializer(serializers.Serializer):
    team = serializers.CharField(required=False, allow_blank=True, help_text="default: your current team")
    name = serializers.CharField(
        max_length=63, help_text="lowercase letters, digits and '-'; a new version if it exists"
    )
    description = serializers.CharField(required=False, allow_blank=True, default="")
    data_path = serializers.CharField(
        required=False, allow_blank=True, help_text="a folder of your data space (data:PATH or PATH)"
    )
    job_output = serializers.CharField(
        required=False, allow_blank=True, help_text="a job's output folder, such as j-3k9x2m4q/model_dir/data"
    )
    archive = serializers.FileField(required=False, help_text="a zip archive of the files (multipart)")


_T = OpenApiParameter("team", str, OpenApiParameter.PATH)
_N = OpenApiParameter("name", str, OpenApiParameter.PATH)


class _Base(APIView):
    def dataset(self, team: str, name: str) -> Dataset:
        dataset = datasets.dataset_detail(self.request.user, team, name)
        if dataset is None:
            raise Http404(_("Not found."))
        return dataset


class DatasetListView(_Base):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        parameters=[OpenApiParameter("team", str, description="only this team's datasets")],
        responses=DatasetSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        """The datasets of your teams."""
        queryset = datasets.datasets_visible(request.user)
        if request.query_params.get("team"):
            queryset = queryset.filter(team__slug=request.query_params["team"])
        return Response(DatasetSerializer(queryset, many=True).data)

    @extend_schema(
        request={"application/json": DatasetCreateSerializer, "multipart/form-data": DatasetCreateSerializer},
        responses={201: DatasetVersionSerializer},
        description="Make the next version of a dataset (the dataset on first use) from a folder of your data "
        "(data_path), a job's output folder (job_output) or a zip archive (archive).",
    )
    def post(self, request: Request) -> Response:
        body = DatasetCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields = body.validated_data
        team = team_named(request, fields.get("team"))
        if team is None:
            raise_validation(DjangoValidationError({"team": [_("You are in no team: name one.")]}))
        archive = fields.get("archive")
        try:
            version = datasets.dataset_version_create(
                user=request.user,
                team=team,
                name=fields["name"],
                description=fields.get("description", ""),
                data_path=fields.get("data_path") or None,
                job_output=fields.get("job_output") or None,
                archive=archive,
                archive_name=getattr(archive, "name", "") or "",
            )
        except DjangoValidationError as exc:
            raise_validation(exc)
        fresh = DatasetVersion.objects.select_related("dataset__team", "created_by").get(pk=version.pk)
        return Response(DatasetVersionSerializer(fresh).data, status=status.HTTP_201_CREATED)


class DatasetDetailView(_Base):
    @extend_schema(parameters=[_T, _N], responses=DatasetDetailSerializer)
    def get(self, request: Request, team: str, name: str) -> Response:
        """A dataset with its versions."""
        return Response(DatasetDetailSerializer(self.dataset(team, name)).data)

    @extend_schema(parameters=[_T, _N], responses={204: None})
    def delete(self, request: Request, team: str, name: str) -> Response:
        """Delete the dataset with every version (409 while an active job mounts one)."""
        datasets.dataset_delete(user=request.user, dataset=self.dataset(team, name))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DatasetVersionView(_Base):
    def version(self, team: str, name: str, number: str) -> DatasetVersion:
        dataset = self.dataset(team, name)
        version = next((v for v in dataset.versions.all() if v.version == int(number)), None)
        if version is None:
            raise Http404(_("Not found."))
        version.dataset = dataset
        return version

    @extend_schema(
        parameters=[_T, _N, OpenApiParameter("version", int, OpenApiParameter.PATH)],
        responses=DatasetVersionSerializer,
    )
    def get(self, request: Request, team: str, name: str, version: str) -> Response:
        return Response(DatasetVersionSerializer(self.version(team, name, version)).data)

    @extend_schema(parameters=[_T, _N, OpenApiParameter("version", int, OpenApiParameter.PATH)], responses={204: None})
    def delete(self, request: Request, team: str, name: str, version: str) -> Response:
        """Delete one version (the dataset with it when it was the last; 409 while an active job mounts it)."""
        datasets.dataset_version_delete(user=request.user, version=self.version(team, name, version))
        return Response(status=status.HTTP_204_NO_CONTENT)
