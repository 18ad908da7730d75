"""Load the shipped job templates (examples/templates/*.yaml) as platform templates, every team's; run it again to
refresh them (a template keeps its id, so a link to it stays good)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from jobs import templates


class Command(BaseCommand):
    help = "Load examples/templates/*.yaml as platform job templates (seen by everyone, changed by platform admins)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dir", default=str(templates.SHIPPED), help="the folder of template files")

    def handle(self, *args, **options) -> None:
        loaded = templates.load_platform_templates(directory=Path(options["dir"]))
        for template in loaded:
            self.stdout.write(f"{template.name} ({template.framework}): fields {', '.join(template.fields)}")
        self.stdout.write(self.style.SUCCESS(f"{len(loaded)} platform templates loaded"))
