# The endpoint tests run jobs on a local cluster, as the notebooks' tests do: the same fixtures.
from notebooks.tests.conftest import _fast_passwords, local_cluster, stop_all  # noqa: F401
