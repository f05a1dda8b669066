from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from generations import api, health, media, views

api_patterns = [
    path("openapi.json", api.openapi_schema, name="api-openapi"),
    path("generations", api.generations_collection, name="api-generations"),
    path("generations/<uuid:pk>", api.generation_detail, name="api-generation"),
    path("generations/<uuid:pk>/extend", api.generation_extend, name="api-generation-extend"),
]

page_patterns = [
    path("", views.gallery, name="gallery"),
    path("generations/new/", views.create, name="generation-new"),
    path("generations/cards/", views.cards, name="generation-cards"),
    path("generations/<uuid:pk>/", views.detail, name="generation-detail"),
    path("generations/<uuid:pk>/extend/", views.extend, name="generation-extend"),
    path("generations/<uuid:pk>/like/", views.like, name="generation-like"),
    path("generations/<uuid:pk>/retry/", views.retry, name="generation-retry"),
    path("generations/<uuid:pk>/cancel/", views.cancel, name="generation-cancel"),
    path("generations/<uuid:pk>/mark-failed/", views.mark_failed, name="generation-mark-failed"),
    path("generations/<uuid:pk>/delete/", views.delete, name="generation-delete"),
    path("jobs/", views.jobs, name="jobs"),
    path("jobs/count/", views.jobs_count, name="jobs-count"),
]

urlpatterns = [
    *page_patterns,
    path("healthz", health.healthz, name="healthz"),
    path("api/v1/", include(api_patterns)),
    # Log in, log out and change password; no e-mail password reset (admins reset passwords).
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"
    ),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("admin/", admin.site.urls),
    re_path(r"^{}(?P<path>.+)$".format(settings.MEDIA_URL.lstrip("/")), media.media, name="media"),
]
