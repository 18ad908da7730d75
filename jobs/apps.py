from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        from jobs import quota, schedule
        from jobs.models import Experiment, Job
        from teams import quota_usage, sharing

        # The site's clock (manage.py scheduler) calls this on every tick.
        self.periodic_work = (schedule.enqueue_due,)
        # Experiments and jobs may be shared one by one (deleted jobs are hidden: nothing to share).
        sharing.register("experiment", Experiment)
        sharing.register(
            "job", Job, lookup="public_id", id_pattern=r"j-[a-z0-9]{8}", rows=lambda: Job.objects.filter(deleted=False)
        )
        # The team page shows what the team's jobs hold against its quotas (teams may not import jobs).
        quota_usage.register(quota.team_held)
