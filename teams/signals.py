"""Signals the teams app sends; apps above it connect to them in their ``AppConfig.ready()``.

teams imports no other app: what must follow a change of a team (its namespaces, quotas and queues on
the clusters) listens here instead.
"""

from django.dispatch import Signal

# A team, or one of its quotas, changed. Sent after the change has committed, with ``team_id``.
# The clusters app connects provisioning to it.
team_changed = Signal()
