"""lumaweb: a self-hosted studio for Luma Dream Machine videos."""

from .celery import app as celery_app

__all__ = ("celery_app",)
