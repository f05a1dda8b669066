from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_delete, post_save


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
        # The Jobs page's change stamp (generations.livestamp): a row saved or deleted through
        # the ORM (a new job, a person's edit) may change any section; status moves bump theirs.
        from generations.livestamp import bump_for_row

        for signal in (post_save, post_delete):
            signal.connect(
                bump_for_row, sender="generations.Generation", dispatch_uid=f"live-{id(signal)}"
            )
