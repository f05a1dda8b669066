"""The studio's page URLs (gallery, create, detail, actions, jobs, usage), mounted at the root."""

from django.urls import path, re_path

from generations import (
    board_views,
    callback_views,
    chain_views,
    converters,  # noqa: F401  (registers <token:...>)
    frame_views,
    share_views,
    source_views,
    team_views,
    usage_views,
    views,
)

urlpatterns = [
    path("", views.gallery, name="gallery"),
    path("generations/new/", views.create, name="generation-new"),
    path("generations/cards/", views.cards, name="generation-cards"),
    path("generations/<uuid:pk>/", views.detail, name="generation-detail"),
    path("generations/<uuid:pk>/chain.mp4", chain_views.chain_mp4, name="generation-chain-mp4"),
    path("generations/<uuid:pk>/extend/", views.extend, name="generation-extend"),
    path("generations/<uuid:pk>/before/", source_views.before, name="generation-before"),
    path(
        "generations/<uuid:pk>/interpolate/",
        source_views.interpolate,
        name="generation-interpolate",
    ),
    path("generations/<uuid:pk>/frame.jpg", frame_views.frame_image, name="generation-frame"),
    path("generations/<uuid:pk>/like/", views.like, name="generation-like"),
    path("generations/<uuid:pk>/retry/", views.retry, name="generation-retry"),
    path("generations/<uuid:pk>/cancel/", views.cancel, name="generation-cancel"),
    path("generations/<uuid:pk>/mark-failed/", views.mark_failed, name="generation-mark-failed"),
    path("generations/<uuid:pk>/check-again/", views.check_again, name="generation-check-again"),
    path("generations/<uuid:pk>/copy-again/", views.copy_again, name="generation-copy-again"),
    path("generations/<uuid:pk>/delete/", views.delete, name="generation-delete"),
    path("boards/", board_views.board_list, name="board-list"),
    path("boards/<int:pk>/", board_views.board_detail, name="board-detail"),
    path("boards/<int:pk>/rename/", board_views.board_rename, name="board-rename"),
    path("boards/<int:pk>/sharing/", board_views.board_sharing, name="board-sharing"),
    path("boards/<int:pk>/delete/", board_views.board_delete, name="board-delete"),
    path("boards/<int:pk>/download.zip", board_views.board_zip, name="board-zip"),
    path("generations/<uuid:pk>/boards/", board_views.generation_boards, name="generation-boards"),
    path(
        "generations/<uuid:pk>/boards/new/",
        board_views.generation_board_new,
        name="generation-board-new",
    ),
    path(
        "generations/<uuid:pk>/boards/<int:board_pk>/",
        board_views.generation_board_set,
        name="generation-board",
    ),
    path("jobs/", views.jobs, name="jobs"),
    path("jobs/count/", views.jobs_count, name="jobs-count"),
    path("hold/resume/", views.hold_resume, name="hold-resume"),
    path("usage/", usage_views.usage, name="usage"),
    path("usage.csv", usage_views.usage_csv, name="usage-csv"),
    path("hold/cancel-waiting/", views.hold_cancel_waiting, name="hold-cancel-waiting"),
    path("team/", team_views.team, name="team"),
    path("team/members/add/", team_views.add_member, name="team-add"),
    path("team/members/<int:pk>/", team_views.change_member, name="team-member"),
    path("team/members/<int:pk>/active/", team_views.set_active, name="team-member-active"),
    path("team/budget/", team_views.team_budget, name="team-budget"),
    path("team/audit.csv", team_views.audit_csv, name="team-audit-csv"),
    path("team/webhooks/", views.team_webhooks, name="team-webhooks"),
    path("team/webhooks/<int:pk>/active/", views.team_webhook_active, name="team-webhook-active"),
    path("team/webhooks/<int:pk>/remove/", views.team_webhook_remove, name="team-webhook-remove"),
    # Share links: the public page and its media (no login), the studio's side.
    # A token is [A-Za-z0-9_-]{1,64} (generations/converters.py); anything else under /s/ is the
    # public page's own 404, never the studio's, and never a database query.
    path("s/<token:token>/", share_views.public_page, name="share-page"),
    path(
        "s/<token:token>/<uuid:generation_id>/video.mp4",
        share_views.public_media,
        {"name": "video.mp4"},
        name="share-video",
    ),
    path(
        "s/<token:token>/<uuid:generation_id>/poster.jpg",
        share_views.public_media,
        {"name": "poster.jpg"},
        name="share-poster",
    ),
    re_path(r"^s/", share_views.public_gone, name="share-gone"),
    # A provider's call-back (Luma's callback_url): makes one row's poll due, nothing more.
    path(
        "hooks/upstream/<token:token>/",
        callback_views.upstream_callback,
        name="upstream-callback",
    ),
    path("generations/<uuid:pk>/share/", share_views.share_generation, name="generation-share"),
    path("boards/<int:pk>/share/", share_views.share_board, name="board-share"),
    path("shares/", share_views.shares_page, name="shares"),
    path("shares/<int:pk>/revoke/", share_views.revoke, name="share-revoke"),
]
