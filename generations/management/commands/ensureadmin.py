"""Make sure a first administrator exists (used by scripts/run).

Takes DJANGO_SUPERUSER_USERNAME / _PASSWORD / _EMAIL like ``createsuperuser --noinput``. Without
a password it makes one up, keeps it in .run/admin-password (mode 600) and prints where it is.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the first admin if there is none; print how to log in."

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "admin")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
        secret_file = Path(settings.BASE_DIR) / ".run" / "admin-password"
        if User.objects.filter(username=username).exists():
            where = f" (password in {secret_file})" if secret_file.exists() else ""
            self.stdout.write(f"Log in as {username!r}{where}.")
            return
        if not password:
            password = secrets.token_urlsafe(12)
            secret_file.parent.mkdir(parents=True, exist_ok=True)
            secret_file.write_text(password + "\n")
            secret_file.chmod(0o600)
        User.objects.create_superuser(username=username, email=email, password=password)
        shown = f"password in {secret_file}" if secret_file.exists() else "your password"
        self.stdout.write(self.style.SUCCESS(f"Created admin {username!r} ({shown})."))
