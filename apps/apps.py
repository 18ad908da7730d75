from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AppsConfig(AppConfig):
    name = "apps"
    verbose_name = _("Apps")

    def ready(self) -> None:
        from apps import access, dashboard, schedule, specs
        from clusters import crypto
        from endpoints import registry
        from jobs import describe, readiness
        from teams import dashboard as home
        from teams import permissions

        # A run is opened only once its app answers its health check (see jobs/readiness.py).
        readiness.register("app", specs.app_readiness)
        readiness.endpoint_ready.connect(access.run_ready, dispatch_uid="apps.run_ready")
        # Its secrets reach its task's environment, never its job's spec.
        describe.register_env("app", access.secrets_of)
        # Who opens an app besides its team: anyone when public, the named users when shared.
        permissions.register_audience(access.in_audience)
        # An app's run is served at /apps/{team}/{name}/ only, not as a job's endpoint.
        registry.register_access("app", access.endpoint_access)
        # Idle apps sleep, and runs that never become healthy fail: the site's clock calls this every tick.
        self.periodic_work = (schedule.enqueue_due,)
        crypto.register_encrypted("apps.App", "secrets_encrypted")

        # The user's apps on the home page (teams.dashboard), beside the clusters.
        home.register("apps", home.LIST_TEMPLATE, dashboard.my_apps, column=home.SIDE)
