"""The studio's page URLs (gallery, create, detail, actions, jobs, usage), mounted at the root."""

from django.urls import path

from generations import share_views, team_views, usage_views, views

urlpatterns = [
    path("", views.gallery, name="gallery"),
    path("generations/new/", views.create, name="generation-new"),
    path("generations/cards/", views.cards, name="generation-cards"),
    path("generations/<uuid:pk>/", views.detail, name="generation-detail"),
    path("generations/<uuid:pk>/extend/", views.extend, name="generation-extend"),
    path("generations/<uuid:pk>/like/", views.like, name="generation-like"),
    path("generations/<uuid:pk>/retry/", views.retry, name="generation-retry"),
    path("generations/<uuid:pk>/cancel/", views.cancel, name="generation-cancel"),
    path("generations/<uuid:pk>/mark-failed/", views.mark_failed, name="generation-mark-failed"),
    path("generations/<uuid:pk>/check-again/", views.check_again, name="generation-check-again"),
    path("generations/<uuid:pk>/copy-again/", views.copy_again, name="generation-copy-again"),
    path("generations/<uuid:pk>/delete/", views.delete, name="generation-delete"),
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
    path("s/<str:token>/", share_views.public_page, name="share-page"),
    path(
        "s/<str:token>/<uuid:generation_id>/video.mp4",
        share_views.public_media,
        {"name": "video.mp4"},
        name="share-video",
    ),
    path(
        "s/<str:token>/<uuid:generation_id>/poster.jpg",
        share_views.public_media,
        {"name": "poster.jpg"},
        name="share-poster",
    ),
    path("generations/<uuid:pk>/share/", share_views.share_generation, name="generation-share"),
    path("boards/<int:pk>/share/", share_views.share_board, name="board-share"),
    path("shares/", share_views.shares_page, name="shares"),
    path("shares/<int:pk>/revoke/", share_views.revoke, name="share-revoke"),
]
