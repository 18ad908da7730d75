"""The contract between the jobs app and the backends: what both sides must agree on, in plain code.

- ``storage``: the directories every task sees (the storage layout), where a task's log is kept, and the
  variable that names a TensorBoard's sources;
- ``quantity``: the one reader of Kubernetes-style quantities (cpu in millicores, memory in bytes) and
  durations, and their formatting for people.

It sits beside ``base.py`` (the protocol and its plain data) and, like it, imports no app: the jobs app
above and every backend import it.
"""
