from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = _("Monitoring and cost")

    def ready(self) -> None:
        from monitoring import accounting

        # Each job's accounting and cost: a pass a minute (monitoring/accounting.py). Appended, so the other
        # periodic work of this app (the sampler, retention) stays.
        self.periodic_work = (*getattr(self, "periodic_work", ()), accounting.enqueue_due)

    def ready(self) -> None:
        from jobs import panels
        from monitoring import job_views

        # The job page's Usage panel: the jobs app may not import monitoring, so monitoring plugs in.
        panels.register("usage", "monitoring/job_usage_panel.html", job_views.usage_panel)

        from monitoring import alert_tasks

        # Alerts (idle GPU jobs, jobs waiting too long, clusters whose sync keeps failing): a pass a minute.
        self.periodic_work = (*getattr(self, "periodic_work", ()), alert_tasks.enqueue_due)
