"""Pages of datasets: the list, one dataset with its versions, making a version, deleting."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from assets.models import Dataset
from clusters.backends.contract import storage
from files import datasets
from teams import permissions
from teams.exceptions import ActionRefused
from teams.permissions import Action

SOURCES = (
    ("data", gettext_lazy("A folder of my data")),
    ("job", gettext_lazy("A job's output folder")),
    ("upload", gettext_lazy("A zip archive")),
)


class DatasetForm(forms.Form):
    name = forms.CharField(
        label=gettext_lazy("Name"), max_length=63,
        help_text=gettext_lazy("Lowercase letters, digits and '-'. An existing dataset gets its next version."),
    )  # fmt: skip
    description = forms.CharField(
        label=gettext_lazy("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    source = forms.ChoiceField(label=gettext_lazy("Made from"), choices=SOURCES, widget=forms.RadioSelect)
    data_path = forms.CharField(
        label=gettext_lazy("Folder of my data"), required=False, max_length=1000,
        help_text=gettext_lazy("A path in your data space, e.g. mnist/train"),
    )  # fmt: skip
    job_output = forms.CharField(
        label=gettext_lazy("Job output folder"), required=False, max_length=500,
        help_text=gettext_lazy("e.g. j-3k9x2m4q/model_dir/features"),
    )  # fmt: skip
    archive = forms.FileField(label=gettext_lazy("Zip archive"), required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            if name != "source":
                field.widget.attrs.setdefault("class", "form-control")


def _team(request: HttpRequest):
    team = getattr(request, "team", None)
    return team if team else None


def _dataset(request: HttpRequest, team: str, name: str) -> Dataset:
    dataset = datasets.dataset_detail(request.user, team, name)
    if dataset is None:
        raise Http404(_("Not found."))
    return dataset


@login_required
@require_GET
def dataset_list(request: HttpRequest) -> HttpResponse:
    team = _team(request)
    all_teams = request.GET.get("team") == "all" or team is None
    queryset = datasets.datasets_visible(request.user)
    if not all_teams:
        queryset = queryset.filter(team=team)
    return render(
        request, "files/dataset_list.html", {"datasets": list(queryset[:500]), "team": team, "all_teams": all_teams}
    )


@login_required
@require_GET
def dataset_detail(request: HttpRequest, team: str, name: str) -> HttpResponse:
    dataset = _dataset(request, team, name)
    return render(
        request,
        "files/dataset_detail.html",
        {
            "dataset": dataset,
            "versions": list(dataset.versions.all()),
            "in_use_by": datasets.jobs_using(dataset),
            "can_change": permissions.can(request.user, dataset, Action.CHANGE),
            "variable": storage.dataset_variable(dataset.name),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def dataset_create(request: HttpRequest) -> HttpResponse:
    initial = {
        "source": request.GET.get("source") or "data",
        "data_path": request.GET.get("data_path", ""),
        "job_output": request.GET.get("job_output", ""),
        "name": request.GET.get("name", ""),
    }
    form = DatasetForm(request.POST or None, request.FILES or None, initial=initial)
    errors: dict = {}
    team = _team(request)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        source = data["source"]
        try:
            if team is None:
                raise ValidationError({"name": [_("You are in no team: ask a team admin to add you.")]})
            archive = data["archive"] if source == "upload" else None
            version = datasets.dataset_version_create(
                user=request.user,
                team=team,
                name=data["name"],
                description=data["description"],
                data_path=(data["data_path"] or "/") if source == "data" else None,
                job_output=data["job_output"] if source == "job" else None,
                archive=archive,
                archive_name=getattr(archive, "name", "") or "",
            )
        except ValidationError as exc:
            errors = exc.message_dict
        except PermissionDenied as exc:
            errors = {"name": [str(exc)]}
        else:
            messages.success(
                request,
                _("Made %(dataset)s@%(n)s: %(files)s files.")
                % {"dataset": version.dataset.name, "n": version.version, "files": version.file_count},
            )
            return redirect("dataset-detail", team=version.dataset.team.slug, name=version.dataset.name)
    elif request.method == "POST":
        errors = {field: [e["message"] for e in problems] for field, problems in form.errors.get_json_data().items()}
    return render(
        request,
        "files/dataset_create.html",
        {"form": form, "errors": errors, "team": team},
        status=400 if request.method == "POST" else 200,
    )


@login_required
@require_POST
def dataset_version_delete(request: HttpRequest, team: str, name: str, version: int) -> HttpResponse:
    dataset = _dataset(request, team, name)
    found = next((v for v in dataset.versions.all() if v.version == version), None)
    if found is None:
        raise Http404(_("Not found."))
    try:
        datasets.dataset_version_delete(user=request.user, version=found)
    except ActionRefused as exc:
        messages.error(request, str(exc))
        return redirect("dataset-detail", team=team, name=name)
    messages.success(request, _("Deleted %(dataset)s@%(n)s.") % {"dataset": name, "n": version})
    if datasets.dataset_detail(request.user, team, name) is None:
        return redirect("dataset-list")
    return redirect("dataset-detail", team=team, name=name)
