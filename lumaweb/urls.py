from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from generations import health, media

urlpatterns = [
    path("", include("generations.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("api/v1/", include("generations.api.urls")),
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

# Under /api/ these answer JSON, elsewhere the studio's error pages (generations/api/errors.py).
handler400 = "generations.api.errors.bad_request"
handler403 = "generations.api.errors.permission_denied"
handler404 = "generations.api.errors.page_not_found"
handler500 = "generations.api.errors.server_error"
