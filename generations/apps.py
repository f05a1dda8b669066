from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_save


class GenerationsConfig(AppConfig):
    name = "generations"
    verbose_name = "Generations"

    def ready(self) -> None:
        # Connected here, not where the middleware is imported: management commands that set a
        # password (changepassword, ensureadmin) load no middleware.
        from generations.api.auth import revoke_tokens_on_password_change

        post_save.connect(
            revoke_tokens_on_password_change,
            sender=settings.AUTH_USER_MODEL,
            dispatch_uid="revoke-api-tokens-on-password-change",
        )
