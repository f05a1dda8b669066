from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path

from generations import api, health, media, views

api_patterns = [
    path("generations", api.generations_collection, name="api-generations"),
    path("generations/<uuid:pk>", api.generation_detail, name="api-generation"),
    path("generations/<uuid:pk>/extend", api.generation_extend, name="api-generation-extend"),
]

urlpatterns = [
    path("", views.gallery, name="gallery"),
    path("healthz", health.healthz, name="healthz"),
    path("api/v1/", include(api_patterns)),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    re_path(r"^{}(?P<path>.+)$".format(settings.MEDIA_URL.lstrip("/")), media.media, name="media"),
]
