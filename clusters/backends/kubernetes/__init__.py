"""The Kubernetes backend: training-operator and Volcano jobs, pods, logs and exec, over the official client."""

from clusters.backends.kubernetes.backend import KubernetesBackend

__all__ = ["KubernetesBackend"]
