"""Pages: the file browser (the workspaces and the data space) and a job's outputs (read-only)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from files import selectors, services, spaces
from files.paths import PathRefused, parts_of
from files.responses import Refusal, check_declared_length, error_status, file_download, flag, zip_download, zip_name
from files.spaces import Location


def _refusal(exc: Exception) -> Refusal:
    refusal = error_status(exc)
    if refusal is None:
        raise exc
    return refusal


def _browser_url(space: str, path: str = "") -> str:
    query = {"space": space}
    if path:
        query["path"] = path
    return f"{reverse('file-browser')}?{urlencode(query)}"


def _crumbs(parts: tuple[str, ...]) -> list[dict[str, str]]:
    return [{"name": part, "path": "/".join(parts[: i + 1])} for i, part in enumerate(parts)]


def _space(value: str | None) -> str:
    return value if value in spaces.WORKSPACES else "personal"


# --- workspaces ------------------------------------------------------------------------


@login_required
@require_GET
def file_browser(request: HttpRequest) -> HttpResponse:
    space = _space(request.GET.get("space"))
    path = request.GET.get("path", "")
    context = {
        "space": space,
        "spaces": [("personal", _("Personal workspace")), ("public", _("Public workspace")), ("data", _("Data"))],
        "entries": None,
        "crumbs": [],
        "path": "",
        "upload_max_bytes": services.upload_max_bytes(),
    }
    status = 200
    try:
        location = spaces.workspace_location(request.user, space, path)
        parts = parts_of(path)
        target = selectors.resolve(location)
        if target.is_file():
            return redirect(f"{reverse('file-download')}?{urlencode({'space': space, 'path': '/'.join(parts)})}")
        context["entries"] = selectors.list_folder(location, target)
        context["crumbs"] = _crumbs(parts)
        context["path"] = "/".join(parts)
    except Exception as exc:
        refusal = _refusal(exc)
        messages.error(request, refusal.message)
        status = refusal.status
    return render(request, "files/browser.html", context, status=status)


@login_required
@require_GET
def file_download_view(request: HttpRequest) -> HttpResponseBase:
    space = _space(request.GET.get("space"))
    path = request.GET.get("path", "")
    try:
        location = spaces.workspace_location(request.user, space, path)
        target = selectors.resolve(location)
        if request.GET.get("archive") == "zip":
            return zip_download([("", target)], zip_name(space, path))
        return file_download(target, inline=flag(request, "inline"))
    except Exception as exc:
        refusal = _refusal(exc)
        messages.error(request, refusal.message)
        return redirect(_browser_url(space))


@login_required
@require_POST
def file_upload_view(request: HttpRequest) -> HttpResponse:
    space = _space(request.POST.get("space"))
    path = request.POST.get("path", "")
    try:
        check_declared_length(request)
        location = spaces.workspace_location(request.user, space, path)
        entries = services.files_upload(location=location, uploads=request.FILES.getlist("file"))
        count = len(entries)
        messages.success(
            request, ngettext("Uploaded %(count)d file.", "Uploaded %(count)d files.", count) % {"count": count}
        )
    except Exception as exc:
        messages.error(request, _refusal(exc).message)
    return redirect(_browser_url(space, path))


@login_required
@require_POST
def folder_create_view(request: HttpRequest) -> HttpResponse:
    space = _space(request.POST.get("space"))
    path = request.POST.get("path", "")
    name = request.POST.get("name", "").strip()
    try:
        if "/" in name or name in {"", ".", ".."} or len(parts_of(name)) != 1:
            raise PathRefused(_("Give the new folder a name without '/' (and not '.' or '..')."))
        location = spaces.workspace_location(request.user, space, "/".join((*parts_of(path), name)))
        _entry, created = services.folder_create(location=location)
        if created:
            messages.success(request, _("Created the folder %(name)s.") % {"name": name})
        else:
            messages.info(request, _("The folder %(name)s already exists.") % {"name": name})
    except Exception as exc:
        messages.error(request, _refusal(exc).message)
    return redirect(_browser_url(space, path))


@login_required
@require_POST
def file_delete_view(request: HttpRequest) -> HttpResponse:
    space = _space(request.POST.get("space"))
    path = request.POST.get("path", "")
    parent = ""
    try:
        parts = parts_of(path)
        parent = "/".join(parts[:-1])
        location = spaces.workspace_location(request.user, space, path)
        services.path_delete(location=location, recursive=request.POST.get("recursive") == "1")
        messages.success(request, _("Deleted %(name)s.") % {"name": parts[-1] if parts else ""})
    except Exception as exc:
        messages.error(request, _refusal(exc).message)
    return redirect(_browser_url(space, parent))


# --- job outputs -----------------------------------------------------------------------


def _outputs_url(job_id: str, path: str = "") -> str:
    url = reverse("job-outputs", kwargs={"job_id": job_id})
    return f"{url}?{urlencode({'path': path})}" if path else url


@login_required
@require_GET
def job_outputs(request: HttpRequest, job_id: str) -> HttpResponse:
    job = spaces.visible_job(request.user, job_id)
    path = request.GET.get("path", "")
    context: dict = {"job": job, "outputs": None, "entries": None, "crumbs": [], "path": ""}
    status = 200
    try:
        parts = parts_of(path)
        tree = spaces.job_output_tree(job, path)
        if tree.virtual == "":
            context["outputs"] = [
                {"path": shown, "exists": folder.is_dir()} for shown, _task, folder in spaces.output_folders(job, "")
            ]
        elif tree.virtual == "summary_dir":
            context["entries"] = [
                selectors.describe(Location(folder, "", shown), folder)
                for shown, _task, folder in spaces.output_folders(job, "summary_dir")
                if folder.is_dir()
            ]
        else:
            target = selectors.resolve(tree.location)
            if target.is_file():
                url = reverse("job-output-download", kwargs={"job_id": job.public_id})
                return redirect(f"{url}?{urlencode({'path': '/'.join(parts)})}")
            context["entries"] = selectors.list_folder(tree.location, target)
        context["crumbs"] = _crumbs(parts)
        context["path"] = "/".join(parts)
    except Exception as exc:
        refusal = _refusal(exc)
        messages.error(request, refusal.message)
        status = refusal.status
    return render(request, "files/job_outputs.html", context, status=status)


@login_required
@require_GET
def job_output_download(request: HttpRequest, job_id: str) -> HttpResponseBase:
    job = spaces.visible_job(request.user, job_id)
    path = request.GET.get("path", "")
    try:
        tree = spaces.job_output_tree(job, path)
        wants_zip = request.GET.get("archive") == "zip"
        if tree.virtual is not None:
            if not wants_zip:
                return redirect(_outputs_url(job.public_id, path))
            folders = spaces.output_zip_folders(job, tree.virtual)
            return zip_download(folders, zip_name(job.public_id, tree.virtual or "outputs"))
        target = selectors.resolve(tree.location)
        if wants_zip:
            return zip_download([("", target)], zip_name(job.public_id, tree.location.shown(tree.location.relative)))
        return file_download(target, inline=flag(request, "inline"))
    except Exception as exc:
        messages.error(request, _refusal(exc).message)
        return redirect(_outputs_url(job.public_id))
