"""A pipeline run compiled to an Argo ``argoproj.io/v1alpha1`` Workflow (``compile_run``), and its strict check.

What a step becomes:

- a training step (pytorch, tensorflow, mpi, xgboost, paddle) and a batch step of more than one task: a
  ``resource`` template that creates exactly the object the Kubernetes backend renders for the step's job
  (validated, described and rendered through the jobs app, so the team's queue, priority, NFS mounts and labels
  are the backend's), with a success and a failure condition on the operator's status and ``setOwnerReference``;
- a batch step of one task: a ``container`` template made of the pod the backend renders for it (its
  container, volumes, scheduler, priority class, node selector, tolerations; the job's labels and the Volcano
  queue annotation on the pod);
- each step is a task of the ``main`` DAG named after the step, with ``depends`` (``depends_to_argo``) and
  ``when`` (``when_to_argo``); a step that declares output parameters exposes them as Argo outputs
  (``valueFrom.path`` in its container; for a resource step a small reader container mounts the job's folder on
  the cluster's NFS); ``retry`` is the template's ``retryStrategy`` (``Always``, the back-off as its duration),
  ``timeout`` the leaf template's ``timeout``;
- a ``foreach`` over a list known when the run starts (a literal list, or a param's value) is a DAG of one task
  per item, each item its own job and manifest; its outputs are per item (``NAME-0``, ``NAME-1``...) and read
  by later steps as a JSON list.

Every job is an EasyAI job whose id is drawn here: 7 characters per step and item, and the attempt's number
(Argo's ``{{retries}}``, 0 for the first) as the eighth, so a retry creates its own object and a retry limit is
at most 9. Run params, ``run.id``, ``schedule.time``, items, earlier steps' job ids and artifacts are known
when the run starts and compiled in as values; an earlier step's output parameter is an Argo input of the
template, substituted by Argo as text.

Refused, with the step's path (a ValidationError): a foreach over an earlier step's output (its length, and so
its job ids, are unknown until it ran); reading ``stdout`` or ``exit_code`` of a resource step (Argo has no pod of
the job to read them from) and ``stdout`` anywhere (Argo keeps a container's whole output, not its last line);
an earlier step's job id or artifact when that step retries (the attempt that succeeded is known only then) or
is a foreach (artifacts); an output of a foreach step in a ``when``; a step whose job serves ports (a resource
template creates one object: no Services or Ingress); a retry limit over 9.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import string
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from clusters.backends.base import BackendError
from clusters.backends.kubernetes import manifests as m
from jobs.describe import describe
from jobs.models import Job
from jobs.services import job_prepare

ARGO_GROUP, ARGO_VERSION, ARGO_PLURAL = "argoproj.io", "v1alpha1", "workflows"
WORKFLOW_KIND = m.ObjectKind(ARGO_GROUP, ARGO_VERSION, ARGO_PLURAL, "Workflow")
LABEL_RUN = "easyai.io/pipeline-run"
ANNOTATION_PLAN = "easyai.io/plan"  # what sync needs to map nodes to steps and jobs (JSON)
RUN_SELECTOR = f"{m.SELECTOR},{LABEL_RUN}"
SCHEDULE_PARAM = "easyai-schedule-time"
MAIN = "main"
MAX_RETRY_LIMIT = 9  # one character of the job id counts the attempt
READER_IMAGE = "busybox:1.36"
READER_MOUNT = "/easyai-job"
READER_RESOURCES = {"limits": {"cpu": "100m", "memory": "64Mi"}, "requests": {"cpu": "100m", "memory": "64Mi"}}
_ID_ALPHABET = string.ascii_lowercase + string.digits
_STEM_LENGTH = 7


class UnsupportedError(Exception):
    """What a Workflow cannot express, at a path of the pipeline spec."""

    def __init__(self, path: str, message: str):
        self.path, self.message = path, message
        super().__init__(f"{path}: {message}")


@dataclass
class StepPlan:
    index: int
    spec: dict[str, Any]
    items: list[Any] | None = None  # a foreach step's items (None: not a foreach step)
    stems: list[str] = field(default_factory=list)  # one per item (one for a plain step)
    kind: str = ""  # "resource" or "container"

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def retry(self) -> int:
        return int((self.spec.get("retry") or {}).get("limit") or 0)

    @property
    def path(self) -> str:
        return f"steps.{self.index}"

    def job_id(self, item: int = 0, attempt: int = 0) -> str:
        return f"{self.stems[item]}{attempt}"


@dataclass
class Compiled:
    workflow: dict[str, Any]
    plan: dict[str, Any]


def _draw_stem() -> str:
    return "j-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_STEM_LENGTH))


def job_name(run, step: str) -> str:
    return f"{run.public_id}-{step}"[:63].rstrip("-")


def _argo_duration(seconds: Any) -> str:
    return f"{int(seconds)}s"


def _text(value: Any) -> str:
    from pipelines.spec.templating import as_text

    return as_text(value)


def _items_of(run, plan: StepPlan) -> list[Any] | None:
    """A foreach step's items when the run starts: a literal list, or a param's (a list, or JSON text of one)."""
    from pipelines.spec.templating import TEMPLATE, classify

    foreach = plan.spec.get("foreach")
    if foreach is None:
        return None
    where = f"{plan.path}.foreach"
    if isinstance(foreach, list):
        return list(foreach)
    whole = TEMPLATE.fullmatch(foreach) if isinstance(foreach, str) else None
    kind = classify(whole[1]) if whole else ()
    if kind and kind[0] == "param":
        value = run.params.get(kind[1])
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        if not isinstance(value, list):
            raise UnsupportedError(where, f"the param {kind[1]!r} is not a list")
        return value
    raise UnsupportedError(
        where,
        "on Argo a foreach runs over a list known when the run starts (a literal list or a param): the items of an "
        "earlier step's output, their count and so their jobs are known only once it ran",
    )


class _Compiler:
    def __init__(self, run) -> None:
        self.run = run
        self.cluster = run.cluster
        self.backend = self.cluster.backend()
        self.spec = run.version.spec
        self.plans: dict[str, StepPlan] = {}
        self.templates: list[dict[str, Any]] = []
        self.arguments: list[dict[str, str]] = []
        self.plan_out: dict[str, Any] = {}

    # --- ids and refs ------------------------------------------------------------------------------

    def draw_ids(self) -> None:
        for _ in range(5):
            stems = [_draw_stem() for plan in self.plans.values() for _item in (plan.items or [None])]
            wanted = {f"{stem}{attempt}" for stem in stems for attempt in range(MAX_RETRY_LIMIT + 1)}
            if len(set(stems)) == len(stems) and not Job.objects.filter(public_id__in=wanted).exists():
                break
        else:
            raise ValidationError({"steps": ["no free job ids after 5 draws"]})
        it = iter(stems)
        for plan in self.plans.values():
            plan.stems = [next(it) for _item in (plan.items or [None])]

    def upstream(self, plan: StepPlan, ref: str, where: str) -> StepPlan:
        found = self.plans.get(ref)
        if found is None:  # the spec's validation names unknown steps; kept for safety
            raise UnsupportedError(where, f"no step {ref!r}")
        return found

    def upstream_ids(self, other: StepPlan, where: str, what: str) -> list[str]:
        if other.retry:
            raise UnsupportedError(
                where,
                f"on Argo the job id of step {other.name!r}, which retries, is known only once it ran: "
                f"{what} cannot be compiled into this step",
            )
        return [other.job_id(i) for i in range(len(other.stems))]

    # --- a step's job --------------------------------------------------------------------------------

    def render_job(self, plan: StepPlan, item_index: int | None, inputs: dict[str, str]) -> dict[str, Any]:
        """The step's job for one item, with values for everything known now and a marker per runtime input."""
        from pipelines.spec.templating import classify, render_job

        where = f"{plan.path}.job"
        item = plan.items[item_index] if plan.items is not None and item_index is not None else None
        extra_inputs: dict[str, str] = {}

        def marker(source: str) -> str:
            for name, known in inputs.items():
                if known == source:
                    return _marker(name)
            name = f"in-{len(inputs)}"
            inputs[name] = source
            return _marker(name)

        def lookup(ref: str) -> Any:
            kind = classify(ref)
            if kind[0] == "param":
                return self.run.params[kind[1]]
            if kind[0] == "run":
                return self.run.public_id
            if kind[0] == "schedule":
                return _schedule_time(self.run)
            if kind[0] == "item":
                if plan.items is None:
                    raise KeyError(ref)
                if kind[1] is None:
                    return item
                if not isinstance(item, dict) or kind[1] not in item:
                    raise KeyError(ref)
                return item[kind[1]]
            other = self.upstream(plan, kind[1], where)
            if kind[2] == "job_id" or (kind[2] == "parameters" and kind[3] == "job_id"):
                ids = self.upstream_ids(other, where, f"{{{{{ref}}}}}")
                return ids if other.items is not None else ids[0]
            if kind[2] == "parameters":
                if kind[3] in ("stdout", "exit_code"):
                    raise UnsupportedError(
                        where, f"{{{{{ref}}}}}: on Argo a step's {kind[3]} cannot be read by later jobs"
                    )
                if other.items is not None:
                    parts = [marker(f"{{{{tasks.{other.name}.outputs.parameters.{kind[3]}-{i}}}}}")
                             for i in range(len(other.items))]  # fmt: skip
                    return "[" + ",".join(f'"{p}"' for p in parts) + "]"
                return marker(f"{{{{tasks.{other.name}.outputs.parameters.{kind[3]}}}}}")
            # an artifact: the earlier job's folder, mounted read-only as one of this job's inputs
            if other.items is not None:
                raise UnsupportedError(where, f"{{{{{ref}}}}}: on Argo a foreach step's artifacts cannot be mounted")
            job_id = self.upstream_ids(other, where, f"{{{{{ref}}}}}")[0]
            relative = ((other.spec.get("outputs") or {}).get("artifacts") or {}).get(kind[3])
            if relative is None:
                raise KeyError(ref)
            name = re.sub(r"[^a-z0-9_]", "_", f"{other.name}_{kind[3]}".lower())[:63]
            extra_inputs[name] = f"{job_id}/{relative}"
            return f"/inputs/{name}"

        from pipelines.spec.templating import RenderError

        try:
            data = render_job(plan.spec["job"], lookup)
        except RenderError as exc:
            raise UnsupportedError(where, f"no value for {{{{{exc.ref}}}}}") from None
        if extra_inputs:
            data["inputs"] = {**(data.get("inputs") or {}), **extra_inputs}
        return {**data, "name": job_name(self.run, plan.name), "team": self.run.team.slug, "cluster": self.cluster.name}

    def rendered_object(self, plan: StepPlan, data: dict[str, Any], job_id: str) -> tuple[dict[str, Any], Any]:
        """What the Kubernetes backend renders for the step's job (validated as job_submit validates it)."""
        where = f"{plan.path}.job"
        ours = {p.job_id(i) for p in self.plans.values() for i in range(len(p.stems))}
        stripped = dict(data)
        pre_job = stripped.pop("pre_job", None) if data.get("pre_job") in ours else None
        step_inputs: dict[str, str] = {}
        if data.get("inputs"):
            kept = {k: v for k, v in data["inputs"].items() if v.split("/", 1)[0] not in ours}
            step_inputs = {k: v for k, v in data["inputs"].items() if k not in kept}
            if kept:
                stripped["inputs"] = kept
            else:
                stripped.pop("inputs")
        try:
            spec, team, cluster, volumes, found_pre = job_prepare(user=self.run.owner, data=stripped)
        except ValidationError as exc:
            raise ValidationError({f"{where}.{k}": v for k, v in exc.message_dict.items()}) from None
        if pre_job:
            spec["pre_job"] = pre_job
        if step_inputs:
            spec["inputs"] = {**(spec.get("inputs") or {}), **step_inputs}
        if spec.get("ports"):
            raise UnsupportedError(f"{where}.ports", "on Argo a step's job serves no ports (no Services, no Ingress)")
        job = Job(
            public_id=job_id, name=spec["name"], team=team, owner=self.run.owner, cluster=cluster,
            framework=spec["framework"], spec=spec, priority=spec.get("priority", "normal"),
        )  # fmt: skip
        job.created_at = timezone.now()
        if pre_job:
            job.pre_job = Job(pk=-1, public_id=pre_job)  # an earlier step's job: recorded once its node starts
        elif found_pre is not None:
            job.pre_job = found_pre
        description = describe(job, volumes=volumes)
        problems = self.backend.check(description)
        if problems:
            raise ValidationError({f"{where}": problems})
        try:
            rendered = self.backend.render(description)
        except BackendError as exc:
            raise ValidationError({where: [str(exc)]}) from None
        if len(rendered) != 1:
            raise UnsupportedError(where, "on Argo a step's job is one object")
        return rendered[0], description

    # --- templates -------------------------------------------------------------------------------------

    def job_template(self, plan: StepPlan, item: int | None, name: str, inputs: dict[str, str]) -> dict[str, Any]:
        data = self.render_job(plan, item, inputs)
        job_id = plan.job_id(item or 0)
        manifest, description = self.rendered_object(plan, data, job_id)
        if manifest["apiVersion"].startswith(m.VOLCANO_GROUP + "/") and len(description.tasks) == 1:
            plan.kind = "container"
            template = _container_template(self.cluster, manifest, description)
        else:
            plan.kind = "resource"
            template = _resource_template(manifest)
        template["name"] = name
        if inputs:
            template["inputs"] = {"parameters": [{"name": n} for n in inputs]}
        outputs = self.declared_outputs(plan)
        if plan.kind == "container" and outputs:
            template["outputs"] = {
                "parameters": [{"name": n, "valueFrom": {"path": f"/{rel}"}} for n, rel in outputs.items()]
            }
        if plan.retry:
            if plan.retry > MAX_RETRY_LIMIT:
                raise UnsupportedError(f"{plan.path}.retry.limit", f"on Argo at most {MAX_RETRY_LIMIT} retries")
            strategy: dict[str, Any] = {"limit": plan.retry, "retryPolicy": "Always"}
            if (plan.spec.get("retry") or {}).get("backoff"):
                strategy["backoff"] = {"duration": _argo_duration(plan.spec["retry"]["backoff"])}
            template["retryStrategy"] = strategy
        if plan.spec.get("timeout"):
            template["timeout"] = _argo_duration(plan.spec["timeout"])
        text = json.dumps(template)
        for input_name in inputs:
            text = text.replace(_marker(input_name), _tag(f"inputs.parameters.{input_name}"))
        if plan.retry:
            # The attempt's own id: the first attempt's rendered id with Argo's retry count as its last character.
            text = text.replace(job_id, plan.stems[item or 0] + "{{retries}}")
        self.plan_out[plan.name]["jobs"].append(
            {"template": name, "item": item or 0, "stem": plan.stems[item or 0], "data": data, "inputs": inputs}
        )
        return json.loads(text)

    def declared_outputs(self, plan: StepPlan) -> dict[str, str]:
        return dict((plan.spec.get("outputs") or {}).get("parameters") or {})

    def reader_template(self, plan: StepPlan) -> dict[str, Any]:
        """A container that mounts the job's folder and hands Argo the files the step declared as outputs."""
        image = (self.cluster.settings or {}).get("argo_reader_image") or READER_IMAGE
        return {
            "name": f"out-{plan.name}",
            "inputs": {"parameters": [{"name": "job-id"}]},
            "container": {
                "image": image,
                "command": ["true"],
                "resources": copy.deepcopy(READER_RESOURCES),
                "volumeMounts": [
                    {
                        "name": m.NFS_VOLUME,
                        "mountPath": READER_MOUNT,
                        "subPath": "{{inputs.parameters.job-id}}",
                        "readOnly": True,
                    }
                ],
            },  # fmt: skip
            "volumes": [
                {"name": m.NFS_VOLUME, "nfs": {"server": self.cluster.nfs_server, "path": self.cluster.nfs_path}}
            ],
            "outputs": {
                "parameters": [
                    {"name": n, "valueFrom": {"path": f"{READER_MOUNT}/{rel}"}}
                    for n, rel in self.declared_outputs(plan).items()
                ]
            },
        }

    def unit(self, plan: StepPlan, item: int | None, inputs: dict[str, str]) -> str:
        """The template that runs one item of a step (its job, and the reader of its outputs): its name."""
        suffix = "" if item is None else f"-{item}"
        leaf = self.job_template(plan, item, f"job-{plan.name}{suffix}", inputs)
        self.templates.append(leaf)
        if plan.kind == "container" or not self.declared_outputs(plan):
            return leaf["name"]
        if not any(t["name"] == f"out-{plan.name}" for t in self.templates):
            self.templates.append(self.reader_template(plan))
        forward = [{"name": n, "value": _tag(f"inputs.parameters.{n}")} for n in inputs]
        wrapper: dict[str, Any] = {
            "name": f"step-{plan.name}{suffix}",
            "steps": [
                [
                    {
                        "name": "job",
                        "template": leaf["name"],
                        **({"arguments": {"parameters": forward}} if forward else {}),
                    }
                ],
                [
                    {
                        "name": "outputs",
                        "template": f"out-{plan.name}",
                        "arguments": {
                            "parameters": [{"name": "job-id", "value": "{{steps.job.outputs.parameters.job-id}}"}]
                        },
                    }
                ],
            ],  # fmt: skip
            "outputs": {
                "parameters": [
                    *(
                        {"name": n, "valueFrom": {"parameter": _tag(f"steps.outputs.outputs.parameters.{n}")}}
                        for n in self.declared_outputs(plan)
                    ),
                    {"name": "job-id", "valueFrom": {"parameter": "{{steps.job.outputs.parameters.job-id}}"}},
                ]
            },  # fmt: skip
        }
        if inputs:
            wrapper["inputs"] = {"parameters": [{"name": n} for n in inputs]}
        self.templates.append(wrapper)
        return wrapper["name"]

    # --- conditions ------------------------------------------------------------------------------------

    def when(self, plan: StepPlan, item: int | None) -> str:
        from pipelines.spec.expressions import parse_when, when_references, when_to_argo
        from pipelines.spec.templating import classify

        text = plan.spec.get("when") or ""
        if not text:
            return ""
        where = f"{plan.path}.when"
        node = parse_when(text)

        def ref_to_argo(ref: str) -> str:
            kind = classify(ref)
            if kind[0] == "param":
                return _tag(f"workflow.parameters.{kind[1]}")
            if kind[0] == "run":
                return "{{workflow.name}}"
            if kind[0] == "schedule":
                return _tag(f"workflow.parameters.{SCHEDULE_PARAM}")
            if kind[0] == "item":
                if plan.items is None or item is None:
                    raise UnsupportedError(where, f"{ref}: only a foreach step has an item")
                value = plan.items[item]
                if kind[1] is not None:
                    if not isinstance(value, dict) or kind[1] not in value:
                        raise UnsupportedError(where, f"{ref}: item {item} has no {kind[1]!r}")
                    value = value[kind[1]]
                name = f"easyai-item-{plan.name}-{item}" + (f"-{kind[1]}" if kind[1] else "")
                if not any(a["name"] == name for a in self.arguments):
                    self.arguments.append({"name": name, "value": _text(value)})
                return _tag(f"workflow.parameters.{name}")
            other = self.plans[kind[1]]
            if other.items is not None:
                raise UnsupportedError(where, f"{ref}: on Argo a foreach step's outputs cannot be compared")
            if kind[2] == "parameters" and kind[3] == "exit_code" and other.kind == "container":
                return _tag(f"tasks.{other.name}.exitCode")
            if kind[2] != "parameters" or kind[3] in ("stdout", "exit_code", "job_id"):
                raise UnsupportedError(where, f"{ref}: on Argo a condition reads declared output parameters")
            return _tag(f"tasks.{other.name}.outputs.parameters.{kind[3]}")

        refs = [classify(r) for r in when_references(node)]
        if item is None and any(k[0] == "item" for k in refs):
            return "\0item"  # evaluated per item, inside the step's DAG
        if item is not None and any(k[0] == "step" for k in refs):
            raise UnsupportedError(
                where, "on Argo a condition reads either the item or earlier steps' outputs, not both"
            )
        return when_to_argo(node, ref_to_argo)

    # --- the whole ---------------------------------------------------------------------------------------

    def step_task(self, plan: StepPlan) -> dict[str, Any]:
        from pipelines.spec.expressions import depends_to_argo, parse_depends

        self.plan_out[plan.name] = {"retry": plan.retry, "items": plan.items, "jobs": [], "kind": ""}
        inputs: dict[str, str] = {}  # input name -> its Argo source in the main DAG
        when = self.when(plan, None)
        if plan.items is None:
            template = self.unit(plan, None, inputs)
        else:
            tasks = []
            for i in range(len(plan.items)):
                unit_inputs = inputs  # one set for the step: every item reads the same earlier outputs
                name = self.unit(plan, i, unit_inputs)
                task: dict[str, Any] = {"name": f"item-{i}", "template": name}
                if unit_inputs:
                    task["arguments"] = {
                        "parameters": [{"name": n, "value": _tag(f"inputs.parameters.{n}")} for n in unit_inputs]
                    }
                if when == "\0item":
                    task["when"] = self.when(plan, i)
                tasks.append(task)
            outputs = [
                {"name": f"{n}-{i}", "valueFrom": {"parameter": _tag(f"tasks.item-{i}.outputs.parameters.{n}")}}
                for i in range(len(plan.items))
                for n in self.declared_outputs(plan)
            ]
            items_template: dict[str, Any] = {"name": f"items-{plan.name}", "dag": {"tasks": tasks}}
            if inputs:
                items_template["inputs"] = {"parameters": [{"name": n} for n in inputs]}
            if outputs:
                items_template["outputs"] = {"parameters": outputs}
            self.templates.append(items_template)
            template = items_template["name"]
            if when == "\0item":
                when = ""
        self.plan_out[plan.name]["kind"] = plan.kind
        self.plan_out[plan.name]["top"] = template
        task = {"name": plan.name, "template": template}
        if plan.spec.get("depends"):
            task["depends"] = depends_to_argo(parse_depends(plan.spec["depends"]))
        if when:
            task["when"] = when
        if inputs:
            task["arguments"] = {"parameters": [{"name": n, "value": source} for n, source in inputs.items()]}
        return task

    def compile(self) -> Compiled:
        errors: dict[str, list[str]] = {}
        for i, step in enumerate(self.spec["steps"]):
            if step.get("register_model"):
                # The model registry is the portal's: a Workflow's pod cannot register a model.
                errors.setdefault(f"steps.{i}.register_model", []).append(
                    "a register_model step runs on the portal's engine only"
                )
                continue
            plan = StepPlan(index=i, spec=step)
            self.plans[step["name"]] = plan
            try:
                plan.items = _items_of(self.run, plan)
            except UnsupportedError as exc:
                errors.setdefault(exc.path, []).append(exc.message)
        if errors:
            raise ValidationError(errors)
        self.draw_ids()
        self.arguments = [{"name": name, "value": _text(value)} for name, value in (self.run.params or {}).items()]
        self.arguments.append({"name": SCHEDULE_PARAM, "value": _schedule_time(self.run)})
        tasks = []
        for plan in self.plans.values():
            try:
                tasks.append(self.step_task(plan))
            except UnsupportedError as exc:
                errors.setdefault(exc.path, []).append(exc.message)
            except ValidationError as exc:
                for key, messages in exc.message_dict.items():
                    errors.setdefault(key, []).extend(messages)
        if errors:
            raise ValidationError(errors)
        return Compiled(workflow=self.workflow(tasks), plan=self.plan_out)

    def workflow(self, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        run, settings = self.run, self.cluster.settings or {}
        owner = run.owner.get_username()
        spec: dict[str, Any] = {
            "entrypoint": MAIN,
            "arguments": {"parameters": self.arguments},
            "templates": [{"name": MAIN, "dag": {"tasks": tasks}}, *self.templates],
        }
        if secrets_ := m.pull_secrets(self.cluster):
            spec["imagePullSecrets"] = secrets_
        if settings.get("argo_service_account"):
            spec["serviceAccountName"] = str(settings["argo_service_account"])
        return {
            "apiVersion": f"{ARGO_GROUP}/{ARGO_VERSION}",
            "kind": "Workflow",
            "metadata": {
                "name": run.public_id,
                "namespace": m.namespace_name(self.cluster, run.team.slug),
                "labels": {
                    m.LABEL_MANAGED_BY: m.MANAGED_BY,
                    LABEL_RUN: run.public_id,
                    m.LABEL_TEAM: run.team.slug,
                    m.LABEL_OWNER: m.label_value(owner),
                },
                "annotations": {
                    m.ANNOTATION_OWNER: owner,
                    ANNOTATION_PLAN: json.dumps(self.plan_out, separators=(",", ":"), sort_keys=True),
                },
            },
            "spec": spec,
        }


def _tag(expression: str) -> str:
    """An Argo template tag: ``{{expression}}``."""
    return "{{" + expression + "}}"


def _marker(name: str) -> str:
    """A runtime input's stand-in while the job is validated and rendered: plain text any string field takes."""
    return f"easyai-argo-{name}-marker"


def _schedule_time(run) -> str:
    if run.scheduled_for is None:
        return ""
    return run.scheduled_for.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _success_failure(manifest: dict[str, Any]) -> tuple[str, str]:
    """Argo's conditions (label-selector syntax over the object's JSON; every failure requirement is tried alone)."""
    if manifest["apiVersion"].startswith(m.VOLCANO_GROUP + "/"):
        return "status.state.phase = Completed", "status.state.phase in (Failed,Terminated,Aborted)"
    field_name = next(k for k in manifest["spec"] if k.endswith("ReplicaSpecs"))
    replicas = manifest["spec"][field_name]
    failure = ",".join(f"status.replicaStatuses.{t}.failed > 0" for t in replicas)
    # training-operator: the job succeeds with its Chief, Master or Launcher; without one, once every worker did.
    for leader in ("Chief", "Master", "Launcher"):
        if leader in replicas:
            return f"status.replicaStatuses.{leader}.succeeded > 0", failure
    workers = replicas.get("Worker", {}).get("replicas", 1)
    return f"status.replicaStatuses.Worker.succeeded > {workers - 1}", failure


def _resource_template(manifest: dict[str, Any]) -> dict[str, Any]:
    success, failure = _success_failure(manifest)
    return {
        "resource": {
            "action": "create",
            "setOwnerReference": True,
            "manifest": json.dumps(manifest, separators=(",", ":")),
            "successCondition": success,
            "failureCondition": failure,
        },
        "outputs": {"parameters": [{"name": "job-id", "valueFrom": {"jsonPath": "{.metadata.name}"}}]},
    }


def _container_template(cluster, manifest: dict[str, Any], description) -> dict[str, Any]:
    """A one-task Volcano Job's pod as a container template: the same container, volumes and scheduling."""
    task = manifest["spec"]["tasks"][0]
    pod = task["template"]["spec"]
    container = {k: v for k, v in pod["containers"][0].items() if k != "name"}
    role = task["name"]
    labels = {**task["template"]["metadata"]["labels"], m.LABEL_INDEX: "0"}
    # The annotations Volcano would write on its pod: the role and index env and summary_dir's subPathExpr read them.
    annotations = {**task["template"]["metadata"]["annotations"], m.VC_TASK_SPEC: role, m.VC_TASK_INDEX: "0"}
    if m.uses_volcano(cluster):
        annotations[m.VC_QUEUE_ANNOTATION] = m.queue_name(cluster, description)
    template: dict[str, Any] = {"metadata": {"labels": labels, "annotations": annotations}, "container": container}
    # initContainers: the debug toolbox's, which fills /easyai/tools before the step's wrapped command runs.
    for key in ("initContainers", "volumes", "nodeSelector", "tolerations", "priorityClassName", "schedulerName"):
        if pod.get(key):
            template[key] = copy.deepcopy(pod[key])
    return template


def compile_run(run) -> Compiled:
    """The run's Workflow and the plan sync reads; ValidationError naming the step path of what cannot compile."""
    from pipelines.spec.templating import RenderError

    try:
        return _Compiler(run).compile()
    except RenderError as exc:
        raise ValidationError({"steps": [f"no value for {{{{{exc.ref}}}}}"]}) from None


def validate_workflow(doc: dict[str, Any]) -> list[str]:
    """Every reason the API server (strict field validation, the CRD's CEL rules) or Argo's controller would refuse
    the Workflow, and the strict check of each object a resource template creates."""
    from clusters.backends.kubernetes.schema_check import validate_manifest

    problems = validate_manifest(doc)
    for i, template in enumerate((doc.get("spec") or {}).get("templates") or []):
        resource = template.get("resource") if isinstance(template, dict) else None
        if isinstance(resource, dict) and isinstance(resource.get("manifest"), str):
            text = re.sub(r"\{\{[^{}]*\}\}", "0", resource["manifest"])
            try:
                manifest = json.loads(text)
            except ValueError as exc:
                problems.append(f"spec.templates.{i}.resource.manifest: not JSON: {exc}")
                continue
            problems += [f"spec.templates.{i}.resource.manifest: {p}" for p in validate_manifest(manifest)]
    return problems


# What sync reads back: which step, item and attempt a node is, and the job it made.
RETRY_SUFFIX = re.compile(r"\((\d+)\)$")
