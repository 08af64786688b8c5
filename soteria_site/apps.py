from django.apps import AppConfig


class SoteriaSiteConfig(AppConfig):
    name = "soteria_site"
    verbose_name = "Soteria"

    def ready(self) -> None:
        from . import checks, schema  # noqa: F401  (registers the system checks and schema extensions)
        from .core import metrics

        metrics.initialise()
