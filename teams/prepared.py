"""Reads compiled once per database connection, then run again with new values.

Every API request makes the same few lookups (its token, the user's team, the cluster a job goes to); Django
builds and compiles each queryset anew every time, which costs several times what the database takes to
answer them. A ``PreparedRead`` builds its queryset once per connection with stand-in values, keeps the SQL
and the compiler's plan for turning rows into objects, and afterwards only executes the SQL with the real
values: the same statement, the same objects (select_related rows and annotations included), through the
connection's cursor like any query (so query counting and the debug log see it).

Only for querysets whose SQL does not depend on the values: filters on plain columns with ``int`` or
``str`` values, no ``None``, no lists, no branches in ``build`` on what it is given.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from itertools import count

from django.db import connections, router
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators

_stand_ins = count(1)
# Where each read keeps its plan on a connection: a number never given twice (an id() is, once a read made in a
# test is gone, and the next one would find the old read's plan).
_keys = count(1)


def _stand_in(kind: type) -> int | str:
    """A value no real lookup uses, found again in the compiled parameters."""
    n = next(_stand_ins)
    return -(2**62) + n if kind is int else f"\x00easyai-prepared-{n}\x00"


class _Plan:
    """One queryset compiled on one connection: its SQL, where each value goes, how rows become objects."""

    def __init__(self, queryset: QuerySet, stand_ins: dict[str, int | str]):
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        self.sql = sql
        self.params = list(params)
        self.slots: list[tuple[int, str, type]] = []
        for name, value in stand_ins.items():
            positions = [i for i, p in enumerate(params) if type(p) is type(value) and p == value]
            if not positions:
                raise ValueError(f"prepared read: {name!r} does not reach the SQL as it was given")
            self.slots.extend((i, name, type(value)) for i in positions)
        # A value changed on its way (a LIKE pattern, a value written into the SQL) cannot be swapped later.
        texts = [v for v in stand_ins.values() if isinstance(v, str)]
        if any(t in sql for t in texts) or any(
            isinstance(p, str) and p not in texts and any(t in p for t in texts) for p in params
        ):
            raise ValueError("prepared read: a value reaches the SQL changed, it cannot be given again")
        self.compiler = compiler
        klass_info = compiler.klass_info
        select = compiler.select
        self.model = klass_info["model"]
        fields = klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [f[0].target.attname for f in select[self.start : self.end]]
        self.related_populators = get_related_populators(klass_info, select, queryset.db)
        self.annotations = list((compiler.annotation_col_map or {}).items())
        self.converters = compiler.get_converters([s[0] for s in select[0 : compiler.col_count]])
        self.db = queryset.db


class PreparedRead:
    """A read to prepare, made by decorating ``build``: ``build(**values)`` returns the model queryset (sliced
    if it should be); ``first(**values)`` runs it and returns its first object or None, ``all(**values)`` every
    object, as the queryset would.

    Each value's type is ``build``'s annotation of it (``int`` or ``str``), and a value is coerced to it as its
    field would coerce it."""

    def __init__(self, build: Callable[..., QuerySet]):
        self.build = build
        kinds = {int: int, str: str, "int": int, "str": str}
        self.kinds = {}
        for name, parameter in inspect.signature(build).parameters.items():
            if parameter.annotation not in kinds:
                raise TypeError(f"prepared read: {name!r} must be annotated int or str")
            self.kinds[name] = kinds[parameter.annotation]
        self.key = f"_easyai_prepared_{next(_keys)}"  # where its plan is kept on each connection
        self.model = None

    def _plan(self) -> _Plan:
        if self.model is None:
            self.model = self.build(**{name: _stand_in(kind) for name, kind in self.kinds.items()}).model
        connection = connections[router.db_for_read(self.model)]
        plan = connection.__dict__.get(self.key)
        if plan is None:
            stand_ins = {name: _stand_in(kind) for name, kind in self.kinds.items()}
            plan = _Plan(self.build(**stand_ins), stand_ins)
            connection.__dict__[self.key] = plan
        return plan

    def all(self, **values) -> list[Model]:
        plan = self._plan()
        params = list(plan.params)
        for position, name, kind in plan.slots:
            value = values[name]
            params[position] = value if type(value) is kind else kind(value)
        compiler = plan.compiler
        with compiler.connection.cursor() as cursor:
            cursor.execute(plan.sql, params)
            rows = cursor.fetchall()
        if plan.converters:
            rows = compiler.apply_converters(rows, plan.converters)
        objects = []
        for row in rows:
            obj = plan.model.from_db(plan.db, plan.init_list, row[plan.start : plan.end])
            for populator in plan.related_populators:
                populator.populate(row, obj)
            for name, position in plan.annotations:
                setattr(obj, name, row[position])
            objects.append(obj)
        return objects

    def first(self, **values) -> Model | None:
        objects = self.all(**values)
        return objects[0] if objects else None


def first_of(queryset: QuerySet) -> QuerySet:
    """The queryset ``.first()`` runs: its own order, else by primary key, one row."""
    return (queryset if queryset.ordered else queryset.order_by("pk"))[:1]
