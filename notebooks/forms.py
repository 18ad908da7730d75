"""Forms of the notebook pages. They render and parse input; the services decide."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from notebooks.models import Notebook
from notebooks.services import DEFAULT_LEASE_HOURS


class NotebookForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=40, help_text=_("Lowercase letters, digits and '-'."))
    kind = forms.ChoiceField(label=_("Kind"), choices=Notebook.Kind.choices, initial=Notebook.Kind.JUPYTERLAB)
    cpu = forms.CharField(label=_("CPU"), initial="2", max_length=32)
    memory = forms.CharField(label=_("Memory"), initial="4Gi", max_length=32)
    gpu = forms.CharField(label=_("GPUs"), initial="0", max_length=10)
    lease_hours = forms.CharField(label=_("Lease (hours)"), initial=str(DEFAULT_LEASE_HOURS), max_length=10)
    image = forms.CharField(
        label=_("Image"), required=False, max_length=1024, help_text=_("On Kubernetes; empty: the platform's default.")
    )
    cluster = forms.CharField(label=_("Cluster"), required=False, max_length=63, help_text=_("Empty: the default."))

    def __init__(self, *args, max_lease: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            css = "form-select" if isinstance(field.widget, forms.Select) else "form-control"
            field.widget.attrs.setdefault("class", css)
        if max_lease:
            self.fields["lease_hours"].help_text = _("At most %(n)s hours (the team's maximum); renewable.") % {
                "n": max_lease
            }


class RenewForm(forms.Form):
    """The hours a renewal extends a notebook's lease by, from now; the service checks the team's maximum."""

    lease_hours = forms.CharField(label=_("Hours"), max_length=10, required=False, strip=True)

    def __init__(self, *args, notebook: Notebook, **kwargs) -> None:
        kwargs.setdefault("auto_id", f"id_renew_{notebook.pk}_%s")
        maximum = notebook.team.notebook_max_lease_hours
        # The notebook's own lease again, unless the team's maximum has been lowered below it since.
        kwargs.setdefault("initial", {"lease_hours": min(notebook.lease_hours, maximum)})
        super().__init__(*args, **kwargs)
        field = self.fields["lease_hours"]
        field.widget = forms.NumberInput(
            attrs={"class": "form-control form-control-sm", "min": 1, "max": maximum, "step": 1, "style": "width: 5rem"}
        )
        field.help_text = _("At most %(n)s hours (the team's maximum).") % {"n": maximum}

    def mark_invalid(self) -> None:
        """Style the field as refused and point screen readers at its error."""
        attrs = self.fields["lease_hours"].widget.attrs
        attrs["class"] = f"{attrs['class']} is-invalid"
        attrs["aria-invalid"] = "true"
        attrs["aria-describedby"] = f"{self['lease_hours'].id_for_label}_error"
