"""Signals the jobs app sends, for apps above it to listen to (it never imports them)."""

from __future__ import annotations

from django.dispatch import Signal

# A cluster's sync pass ended (jobs.tasks.sync_cluster). sender: the Cluster class; cluster: the Cluster;
# seconds: how long the pass took; failed: the backend failed it (the cluster backs off); jobs: how many it synced;
# moved: how many of them changed state (pipelines tick at once when one did: a step's job may have ended).
sync_pass_finished = Signal()
