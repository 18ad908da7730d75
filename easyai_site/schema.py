"""The API schema says what the API answers: drf-spectacular extensions, imported by easyai_site.api_urls."""

from __future__ import annotations

from django.core.exceptions import FieldDoesNotExist
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import build_basic_type
from drf_spectacular.types import OpenApiTypes
from rest_framework import serializers


class BlankableURLFieldExtension(OpenApiSerializerFieldExtension):
    """A URL field that may be blank (a team's ``webhook_url``) holds a URI or "": ``format: uri`` alone
    would make every team without a webhook break the schema."""

    target_class = serializers.URLField
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        uri = build_basic_type(OpenApiTypes.URI)
        if not _may_be_blank(self.target):
            return uri
        return {"anyOf": [uri, {"type": "string", "enum": [""]}]}


def _may_be_blank(field: serializers.Field) -> bool:
    if getattr(field, "allow_blank", False):
        return True
    # DRF drops allow_blank from read-only model fields: ask the model field.
    model = getattr(getattr(getattr(field, "parent", None), "Meta", None), "model", None)
    if model is None or not field.source or "." in field.source:
        return False
    try:
        return bool(model._meta.get_field(field.source).blank)
    except FieldDoesNotExist:
        return False
