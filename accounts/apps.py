from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("Sign-on")

    def ready(self) -> None:
        from accounts import schedule, signals

        signals.connect()
        # The clock's periodic work: the LDAP directory sync (accounts/schedule.py), when LDAP is configured.
        self.periodic_work = (schedule.enqueue_due,)
