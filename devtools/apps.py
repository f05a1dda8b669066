from django.apps import AppConfig


class DevtoolsConfig(AppConfig):
    """Registers ``manage.py chaos``; has no models, URLs or templates."""

    name = "devtools"
    verbose_name = "Development tools"
