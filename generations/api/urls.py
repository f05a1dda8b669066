"""The API's URL patterns, mounted under /api/v1/ by lumaweb/urls.py (no trailing slashes)."""

from django.urls import path

from generations import converters  # noqa: F401  (registers <token:...>)
from generations.api import boards, provider, shares, usage, views

urlpatterns = [
    path("openapi.json", views.openapi_schema, name="api-openapi"),
    path("generations", views.generations_collection, name="api-generations"),
    path("generations/<uuid:pk>", views.generation_detail, name="api-generation"),
    path("generations/<uuid:pk>/extend", views.generation_extend, name="api-generation-extend"),
    path("usage", usage.usage, name="api-usage"),
    path("provider", provider.provider, name="api-provider"),
    path("boards", boards.board_collection, name="api-boards"),
    path("boards/<int:pk>", boards.board_detail, name="api-board"),
    path("boards/<int:pk>/items", boards.board_items, name="api-board-items"),
    path("boards/<int:pk>/items/<uuid:generation_id>", boards.board_item, name="api-board-item"),
    path("generations/<uuid:pk>/share", shares.generation_share, name="api-generation-share"),
    path("boards/<int:pk>/share", shares.board_share, name="api-board-share"),
    path("shares", shares.shares_collection, name="api-shares"),
    path("shares/<token:token>", shares.share_detail, name="api-share"),
]
