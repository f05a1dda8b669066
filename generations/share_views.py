"""Share links: the public page ``/s/<token>/`` and its media, and the studio's side (the Share
panel's POSTs, revoking, the Shared links page).

The public page is for people outside the team: no login, read-only, nothing of the studio
(its own minimal template, no navigation, no names, no links in), marked ``noindex`` in the page
and the headers, ``Referrer-Policy: no-referrer`` (so the token never leaves in a Referer),
throttled per client address. An unknown, expired or revoked token is one and the same 404.
Its videos and posters are served under the token, only while the link is live and only for a
video the link shows now; /media/ stays for logged-in people.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST, require_safe

from generations import mediastore, shares, throttle
from generations.fileserve import serve_file
from generations.models import Generation, ShareLink

PUBLIC_HEADERS = {
    "X-Robots-Tag": "noindex, nofollow",
    "Referrer-Policy": "no-referrer",
}
MEDIA_FILES = {"video.mp4": "video_file", "poster.jpg": "thumbnail_file"}


# --- the public side ------------------------------------------------------------------------------
def _public(response: HttpResponseBase, cache_control: str = "no-store") -> HttpResponseBase:
    for name, value in PUBLIC_HEADERS.items():
        response[name] = value
    response["Cache-Control"] = cache_control
    return response


def _gone(request: HttpRequest) -> HttpResponseBase:
    """The one answer for a token that is unknown, expired or revoked: no hint which."""
    body = render_to_string("generations/share_gone.html", request=request)
    return _public(HttpResponse(body, status=404))


def _throttled(verdict: throttle.Verdict) -> HttpResponseBase:
    response = HttpResponse(
        "Too many requests: wait a minute and try again.\n",
        status=429,
        content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = str(verdict.retry_after)
    return _public(response)


@login_not_required
@require_safe
def public_page(request: HttpRequest, token: str) -> HttpResponseBase:
    verdict = throttle.hit(request, "share-page", settings.SHARE_PAGE_RATE)
    if not verdict.allowed:
        return _throttled(verdict)
    link = shares.live_link(token)
    if link is None:
        return _gone(request)
    if request.method == "GET":
        shares.count_view(link)
    context = {
        "link": link,
        "board": link.board,
        "videos": shares.shown_videos(link),
        "show_prompts": link.show_prompts,
    }
    return _public(render(request, "generations/share_public.html", context))


@login_not_required
def public_gone(request: HttpRequest) -> HttpResponseBase:
    """Anything else under /s/ (a token with characters lumaweb never puts in one, a path that
    is not a page or a file): the same 404 as an unknown token, counted like a page."""
    verdict = throttle.hit(request, "share-page", settings.SHARE_PAGE_RATE)
    if not verdict.allowed:
        return _throttled(verdict)
    return _gone(request)


@login_not_required
@require_safe
def public_media(
    request: HttpRequest, token: str, generation_id: uuid.UUID, name: str
) -> HttpResponseBase:
    verdict = throttle.hit(request, "share-media", settings.SHARE_MEDIA_RATE)
    if not verdict.allowed:
        return _throttled(verdict)
    link = shares.live_link(token)
    gen = shares.shown_video(link, generation_id) if link is not None else None
    field = getattr(gen, MEDIA_FILES[name], None) if gen is not None else None
    if mediastore.remote():  # MEDIA_STORAGE=s3: a presigned URL, for this live link only
        if not field:
            return _public(HttpResponse("Not found.\n", status=404, content_type="text/plain"))
        return _public(mediastore.presigned_redirect(field.name), "private, no-store")
    try:
        full = field.path if field else ""
    except (ValueError, NotImplementedError):  # no file, or a storage without paths
        full = ""
    if not full or not os.path.isfile(full):
        return _public(HttpResponse("Not found.\n", status=404, content_type="text/plain"))
    # no-cache: a browser may keep the bytes but asks again before using them, so a revoked
    # link's video stops at the next play; while the link lives, the answer to that asking is a
    # 304 (fileserve's ETag), no bytes sent again.
    return _public(serve_file(request, full, "private, no-cache"), "private, no-cache")


# --- the studio's side ----------------------------------------------------------------------------
class ShareForm(forms.Form):
    """The Share panel: when the link stops working, and whether the page shows the prompts."""

    expires = forms.ChoiceField(choices=list(shares.EXPIRY_CHOICES.items()), initial="never")
    show_prompts = forms.BooleanField(required=False)

    def share_request(self) -> shares.ShareRequest:
        raw = self.cleaned_data["expires"]
        return shares.ShareRequest(
            expires_in_days=None if raw == "never" else int(raw),
            show_prompts=self.cleaned_data["show_prompts"],
        )


def _next_url(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def _make(request: HttpRequest, default: str, panel: str, make: Any) -> HttpResponse:
    """Validate the panel's form, make the link, and go back to the panel (``#<its id>``:
    shares.js opens it on the new link, the first of its list)."""
    back = _next_url(request, default).split("#")[0]
    if not shares.may_share(request.user):  # before the form: a viewer is told why, whatever
        return render(request, "403.html", {"reason": shares.VIEWERS_DO_NOT_PUBLISH}, status=403)
    form = ShareForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose when the link expires: never, or in 1, 7 or 30 days.")
        return redirect(back)
    try:
        make(form.share_request())
    except shares.ViewersDoNotPublish as exc:
        return render(request, "403.html", {"reason": str(exc)}, status=403)
    except shares.ShareRefused as exc:
        messages.error(request, str(exc))
        return redirect(back)
    messages.success(request, "Share link made: copy it from the Share panel.")
    return redirect(f"{back}#{panel}")


@require_POST
def share_generation(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    gen = get_object_or_404(Generation, pk=pk)
    default = reverse("generation-detail", args=[pk])
    return _make(
        request,
        default,
        f"share-gen-{gen.pk}",
        lambda asked: shares.share_generation(request.user, gen, asked),
    )


@require_POST
def share_board(request: HttpRequest, pk: int) -> HttpResponse:
    board = get_object_or_404(shares.visible_boards(request.user), pk=pk)
    return _make(
        request,
        reverse("shares"),
        f"share-board-{board.pk}",
        lambda asked: shares.share_board(request.user, board, asked),
    )


@require_POST
def revoke(request: HttpRequest, pk: int) -> HttpResponse:
    link = get_object_or_404(ShareLink.objects.select_related("generation", "board"), pk=pk)
    try:
        shares.revoke(request.user, link)
    except shares.ShareRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Link revoked: its page and videos no longer open.")
    return redirect(_next_url(request, reverse("shares")))


@require_GET
def shares_page(request: HttpRequest) -> HttpResponse:
    everyone = shares.is_admin(request.user)
    rows = []
    for link in shares.links_for(request.user, everyone=everyone):
        hidden = shares.hidden_label(request.user, link, everyone=everyone)
        rows.append(
            {
                "link": link,
                "status": shares.status_of(link),
                # a board the person cannot see: neither its name nor the link's address
                "hidden": hidden,
                "url": None if hidden else shares.url_of(request, link),
                "may_revoke": shares.may_revoke(request.user, link),
            }
        )
    return render(request, "generations/shares.html", {"rows": rows, "everyone": everyone})
