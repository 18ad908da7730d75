from django.apps import AppConfig
from django.db.models.signals import post_delete

# The models whose rows may be shared one by one (teams.services.object_share).
SHAREABLE_MODELS = ("jobs.Job", "jobs.Experiment", "notebooks.Notebook")


def drop_object_grants(sender, instance, **kwargs) -> None:
    """A deleted object's guardian grants go with it: they name it only by id, which a new row may reuse."""
    from django.contrib.contenttypes.models import ContentType
    from guardian.models import GroupObjectPermission, UserObjectPermission

    content_type = ContentType.objects.get_for_model(sender)
    for grants in (UserObjectPermission, GroupObjectPermission):
        grants.objects.filter(content_type=content_type, object_pk=str(instance.pk)).delete()


class TeamsConfig(AppConfig):
    name = "teams"

    def ready(self) -> None:
        for model in SHAREABLE_MODELS:
            post_delete.connect(drop_object_grants, sender=model, dispatch_uid=f"drop-object-grants-{model}")
