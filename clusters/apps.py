from django.apps import AppConfig


class ClustersConfig(AppConfig):
    name = "clusters"

    def ready(self) -> None:
        from clusters import services
        from teams.signals import team_changed

        # A team or one of its quotas changed: its namespaces, quotas and queues follow (teams imports no cluster code).
        team_changed.connect(services.team_changed_received, dispatch_uid="clusters-provision-team")
