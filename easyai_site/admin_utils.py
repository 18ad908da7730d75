"""Admin helpers shared by the apps."""

from django.core.paginator import Paginator
from django.utils.functional import cached_property


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows: big event and job tables page without a full COUNT(*)."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return len(self.object_list.values_list("pk", flat=True)[: self.CAP + 1])
