"""The images API (``/api/v1/images/``): the platform's images and those of the caller's teams; admins register,
change and unregister them (``assets.images`` decides who may)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from assets import images
from assets.models import Accelerator, Image
from easyai_site.api import raise_validation
from teams import permissions


class ImageSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    references = serializers.ListField(child=serializers.CharField(), read_only=True)
    can_change = serializers.SerializerMethodField()

    class Meta:
        model = Image
        fields = [
            "id", "team", "name", "tags", "description", "frameworks", "accelerator", "default_for", "references",
            "can_change", "created_at",
        ]  # fmt: skip

    def get_can_change(self, image: Image) -> bool:
        return images.can_change(self.context["request"].user, image)


class ImageWriteSerializer(serializers.Serializer):
    team = serializers.CharField(
        required=False, allow_blank=True, help_text="a team's slug (its admins); empty: every team's (platform admins)"
    )
    name = serializers.CharField(required=False, help_text="without a tag, e.g. pytorch/pytorch")
    tags = serializers.ListField(child=serializers.CharField(), required=False, help_text="the first is the default")
    description = serializers.CharField(required=False, allow_blank=True)
    frameworks = serializers.ListField(child=serializers.CharField(), required=False)
    accelerator = serializers.ChoiceField(choices=Accelerator.choices, required=False)
    default_for = serializers.ListField(child=serializers.CharField(), required=False)


class ImageViewSet(viewsets.GenericViewSet):
    """Registered images: everyone sees the platform's and their teams'; platform admins and team admins change them."""

    serializer_class = ImageSerializer
    queryset = Image.objects.none()

    def get_queryset(self):
        queryset = images.images_visible(self.request.user).select_related("team").order_by("name", "id")
        framework = self.request.query_params.get("framework")
        if framework:
            queryset = [image for image in queryset if framework in (image.frameworks or [])]
        return queryset

    @extend_schema(
        parameters=[OpenApiParameter("framework", str, description="only images that suit this framework")],
        responses=ImageSerializer(many=True),
    )
    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ImageSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(responses=ImageSerializer)
    def retrieve(self, request, pk=None):
        image = images.image_get(request.user, _pk(pk))
        return Response(ImageSerializer(image, context={"request": request}).data)

    @extend_schema(request=ImageWriteSerializer, responses={201: ImageSerializer})
    def create(self, request):
        data = ImageWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        slug = values.pop("team", "")
        team = None
        if slug:
            team = permissions.visible_teams(request.user).filter(slug=slug).first()
            if team is None:
                raise ValidationError({"team": [_("No team %(slug)r that you belong to.") % {"slug": slug}]})
        try:
            image = images.image_register(user=request.user, team=team, **values)
        except DjangoValidationError as exc:
            raise_validation(exc)
        return Response(ImageSerializer(image, context={"request": request}).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ImageWriteSerializer, responses=ImageSerializer)
    def partial_update(self, request, pk=None):
        image = images.image_get(request.user, _pk(pk), change=True)
        data = ImageWriteSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        values.pop("team", None)  # an image stays where it was registered
        try:
            image = images.image_update(user=request.user, image=image, **values)
        except DjangoValidationError as exc:
            raise_validation(exc)
        return Response(ImageSerializer(image, context={"request": request}).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        image = images.image_get(request.user, _pk(pk), change=True)
        images.image_delete(user=request.user, image=image)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _pk(value) -> int:
    from django.http import Http404

    if not str(value).isdigit():
        raise Http404(_("Not found."))
    return int(value)
