from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = _("Monitoring and cost")

    def ready(self) -> None:
        from jobs import panels
        from jobs.signals import sync_pass_finished
        from monitoring import accounting, alert_tasks, dashboard, job_views, metrics, schedule
        from teams import dashboard as home

        # The clock's periodic work: sampling passes and retention (schedule.py), each job's accounting and
        # cost (accounting.py), alerts (idle GPU jobs, jobs waiting too long, clusters whose sync keeps failing).
        self.periodic_work = (schedule.enqueue_due, accounting.enqueue_due, alert_tasks.enqueue_due)
        # Sync passes run in the workers: each one's duration and outcome go to the cache, where /metrics reads them.
        sync_pass_finished.connect(metrics.sync_pass_received, dispatch_uid="monitoring.sync_pass_received")
        # The job page's Usage panel: the jobs app may not import monitoring, so monitoring plugs in.
        panels.register("usage", "monitoring/job_usage_panel.html", job_views.usage_panel)
        # The home page's panels: the team's jobs, usage against quota, failures; clusters' capacity aside.
        home.register("jobs", "monitoring/dashboard_jobs.html", dashboard.jobs_panel)
        home.register("usage", "monitoring/dashboard_usage.html", dashboard.usage_panel)
        home.register("failures", "monitoring/dashboard_failures.html", dashboard.failures_panel)
        home.register(
            "clusters", "monitoring/dashboard_clusters.html", dashboard.clusters_panel, column=home.SIDE, order=10
        )
