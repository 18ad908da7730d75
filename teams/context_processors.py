from django.conf import settings
from django.utils.translation import gettext_noop


def current_team(request):
    from teams.selectors import teams_for_header

    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"signup_enabled": settings.EASYAI_SIGNUP_ENABLED}
    from teams.permissions import can_create_team

    return {
        "current_team": getattr(request, "team", None),
        "header_teams": teams_for_header(user),
        "signup_enabled": settings.EASYAI_SIGNUP_ENABLED,
        "can_create_team": can_create_team(user),
    }


# Top navigation: (url name, label). Names that are not (yet) routed are skipped.
# gettext_noop marks the labels for makemessages; they are translated per request below.
NAV = [
    ("job-list", gettext_noop("Jobs")),
    ("experiment-list", gettext_noop("Experiments")),
    ("job-template-list", gettext_noop("Templates")),
    ("notebook-list", gettext_noop("Notebooks")),
    ("model-list", gettext_noop("Models")),
    ("service-list", gettext_noop("Services")),
    ("app-list", gettext_noop("Apps")),
    ("pipeline-list", gettext_noop("Pipelines")),
    ("file-browser", gettext_noop("Files")),
    ("dataset-list", gettext_noop("Datasets")),
    ("image-list", gettext_noop("Images")),
    ("usage", gettext_noop("Usage")),
]


def nav_items(request):
    from django.urls import NoReverseMatch, reverse
    from django.utils.translation import gettext

    items = []
    for name, label in NAV:
        try:
            items.append({"url": reverse(name), "label": gettext(label)})
        except NoReverseMatch:
            continue
    return {"nav_items": items}
