"""Validate Kubernetes manifests (YAML or JSON files, several documents each) strictly against the shipped schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError

from clusters.backends.kubernetes.schema_check import validate_manifest


class Command(BaseCommand):
    help = "Validate manifests against settings.EASYAI_K8S_SCHEMAS (strict: unknown fields are errors)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("files", nargs="+", help="YAML or JSON files")

    def handle(self, *args: Any, **options: Any) -> None:
        failed = 0
        for name in options["files"]:
            try:
                documents = [d for d in yaml.load_all(Path(name).read_text(), Loader=yaml.CSafeLoader) if d]
            except (OSError, yaml.YAMLError) as exc:
                raise CommandError(f"{name}: {exc}") from exc
            for document in documents:
                label = f"{name}: {document.get('kind')} {(document.get('metadata') or {}).get('name')}"
                problems = validate_manifest(document)
                if problems:
                    failed += 1
                    self.stdout.write(self.style.ERROR(f"{label}: invalid"))
                    for problem in problems:
                        self.stdout.write(f"  {problem}")
                else:
                    self.stdout.write(self.style.SUCCESS(f"{label}: valid"))
        if failed:
            raise CommandError(f"{failed} manifest(s) invalid")
