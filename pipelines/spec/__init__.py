"""The pipeline spec: a DAG of steps, each a job spec without name and team. Pure: no database.

``parse`` reads YAML or JSON (the job spec's reader), ``validate`` checks everything at once and returns the
normalized spec stored on each pipeline version; a normalized spec validates to itself. Problems are a
``SpecError`` (the job spec's, also named ``PipelineSpecError`` here) by field path: ``steps.2.depends``,
``steps.0.job.roles.worker.replicas``, ``params.lr.type``.

A package along its seams: ``validate`` (fields, graph, references, each step's job), ``expressions``
(``depends`` and ``when``: parsing, evaluation, Argo's forms) and ``templating`` (``{{ ref }}`` in a step's
job and ``foreach``).
"""

from __future__ import annotations

from jobs.spec import SpecError
from jobs.spec import parse as parse
from pipelines.spec.expressions import ExpressionError
from pipelines.spec.templating import RenderError, classify, references, render, render_job
from pipelines.spec.validate import BUILTIN_OUTPUTS, FIELDS, PARAM_TYPES, STEP_FIELDS, param_sample, to_text, validate

PipelineSpecError = SpecError

__all__ = [
    "BUILTIN_OUTPUTS",
    "FIELDS",
    "PARAM_TYPES",
    "STEP_FIELDS",
    "ExpressionError",
    "PipelineSpecError",
    "RenderError",
    "SpecError",
    "classify",
    "param_sample",
    "parse",
    "references",
    "render",
    "render_job",
    "to_text",
    "validate",
]
