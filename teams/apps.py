from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "teams"
    # The models whose objects may be shared one by one register themselves in teams.sharing, from their
    # own apps' ready(): teams names none of them.
