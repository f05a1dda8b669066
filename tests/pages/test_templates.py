"""Each thing the pages show is written once: form fields render themselves from the form
(label, placeholder, maxlength, help), the job actions and the "may charge twice" warning are one
partial, icons are one file, and the detail page's chain is not re-rendered by its live poll."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django import forms as django_forms
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from generations.forms import MAX_PROMPT, CreateForm, ExtendForm, GenerationForm
from generations.models import Status
from tests.pages.conftest import htmx, make_gen

TEMPLATES = Path(settings.BASE_DIR) / "templates"


def templates_containing(text: str) -> list[str]:
    return sorted(
        str(path.relative_to(TEMPLATES))
        for path in TEMPLATES.rglob("*.html")
        if text in path.read_text()
    )


@pytest.fixture
def reshaped_prompt(monkeypatch):
    """The prompt field as another form might declare it: the pages must follow."""
    field = django_forms.CharField(
        label="Your shot",
        max_length=1234,
        help_text="Say what the camera sees.",
        widget=django_forms.Textarea(attrs={"rows": 4, "placeholder": "A heron at dawn…"}),
    )
    for form in (GenerationForm, CreateForm, ExtendForm):
        monkeypatch.setitem(form.base_fields, "user_prompt", field)


# --- fields render themselves ---------------------------------------------------------------------
def test_the_create_form_takes_maxlength_placeholder_label_and_help_from_the_form(
    client, reshaped_prompt
):
    html = client.get(reverse("generation-new")).content.decode()
    textarea = re.search(r"<textarea [^>]*>", html).group(0)
    assert 'data-maxlength="1234"' in textarea and 'placeholder="A heron at dawn…"' in textarea
    assert 'aria-describedby="id_user_prompt_helptext"' in textarea
    assert '<label for="id_user_prompt">Your shot</label>' in html
    assert 'id="id_user_prompt_helptext">Say what the camera sees.' in html
    assert 'maxlength="2000"' not in html


def test_the_create_form_counts_up_to_the_form_s_own_maxlength_today(client):
    html = client.get(reverse("generation-new")).content.decode()
    textarea = re.search(r"<textarea [^>]*>", html).group(0)
    assert f'data-maxlength="{MAX_PROMPT}"' in textarea
    assert " maxlength=" not in textarea  # the browser would cut a pasted text silently


def test_the_extend_forms_take_their_prompt_field_from_the_form(client, reshaped_prompt):
    gen = make_gen()
    inline = client.get(reverse("generation-extend", args=[gen.pk]), **htmx("x")).content
    panel = client.get(reverse("generation-detail", args=[gen.pk])).content
    for html, form in (
        (inline.decode(), ExtendForm(parent=gen, auto_id=f"extend-{gen.pk}-%s")),
        (panel.decode(), ExtendForm(parent=gen)),
    ):
        assert str(form["user_prompt"]) in html  # the widget exactly as the form renders it
        assert 'data-maxlength="1234"' in str(form["user_prompt"])
        assert "Say what the camera sees." in html and 'maxlength="2000"' not in html


def test_inline_extend_forms_name_their_card_in_element_ids(client):
    a, b = make_gen(), make_gen()
    for gen in (a, b):
        html = client.get(reverse("generation-extend", args=[gen.pk]), **htmx("x")).content
        html = html.decode()
        assert f'<label for="extend-{gen.pk}-user_prompt">What happens next?</label>' in html
        assert f'id="extend-{gen.pk}-user_prompt"' in html and 'id="id_' not in html


def test_a_field_added_to_the_form_shows_on_every_form_without_a_template_edit(client, monkeypatch):
    seed = django_forms.IntegerField(label="Random seed", required=False, help_text="Same seed…")
    for form in (GenerationForm, CreateForm, ExtendForm):
        monkeypatch.setitem(form.base_fields, "seed", seed)
    gen = make_gen()
    for url, headers in (
        (reverse("generation-new"), {}),
        (reverse("generation-detail", args=[gen.pk]), {}),
        (reverse("generation-extend", args=[gen.pk]), htmx("x")),
    ):
        html = client.get(url, **headers).content.decode()
        assert re.search(r'<input type="number" name="seed"', html), url
        assert "Random seed</label>" in html and "Same seed…" in html, url


def test_field_errors_are_shown_beside_the_field_and_tied_to_it(client):
    response = client.post(reverse("generation-new"), {"user_prompt": "", "aspect_ratio": "1:1"})
    html = response.content.decode()
    textarea = re.search(r"<textarea [^>]*>", html).group(0)
    assert 'aria-invalid="true"' in textarea and "id_user_prompt_error" in textarea
    assert re.search(r'<span class="error" id="id_user_prompt_error">[^<]*required', html)


def test_no_page_template_hard_codes_a_form_s_maxlength_or_placeholder():
    for name in ("generations/new.html", "generations/components.html"):
        text = (TEMPLATES / name).read_text()
        assert not re.search(r"(maxlength|placeholder)=", text), name


# --- written once ---------------------------------------------------------------------------------
def test_the_job_actions_and_the_charge_warning_are_one_partial(client, user):
    assert templates_containing("may charge a second time") == ["generations/components.html"]
    assert templates_containing("'generation-retry'") == ["generations/components.html"]
    unsure = make_gen(Status.NEEDS_ATTENTION, user=user)
    dashboard = client.get(reverse("jobs")).content.decode()
    detail = client.get(reverse("generation-detail", args=[unsure.pk])).content.decode()
    for html in (dashboard, detail):
        assert "may charge a second time" in html
        assert f'action="/generations/{unsure.pk}/retry/"' in html
        assert f'action="/generations/{unsure.pk}/mark-failed/"' in html
    # The dashboard's forms answer in place; the detail page's are plain forms.
    assert f'hx-post="/generations/{unsure.pk}/retry/"' in dashboard
    assert "hx-post" not in re.search(r'<div class="panel warn-panel">.*?</div>', detail, re.S)[0]


def test_icons_live_in_one_file(client, user):
    # The usage page's chart is an SVG drawn from the month's figures, not an icon.
    assert templates_containing("<svg") == ["generations/usage.html", "icons.html"]
    make_gen(user=user)
    html = client.get(reverse("gallery")).content.decode()
    assert html.count('<svg class="plus"') == 2  # the header's New and the page's New video
    assert 'aria-hidden="true" focusable="false"' in html


# --- the chain is outside the live block ---------------------------------------------------------
def test_the_detail_poll_brings_the_live_blocks_but_not_the_chain(client, user):
    root = make_gen(user=user, user_prompt="the first shot")
    child = make_gen(Status.IN_PROGRESS, user=user, parent=root, user_prompt="the second shot")
    page = client.get(reverse("generation-detail", args=[child.pk])).content.decode()
    assert 'id="chain"' in page and "The chain" in page
    poll = client.get(f"/generations/{child.pk}/?v=stale", **htmx("live"))
    html = poll.content.decode()
    assert poll.status_code == 200 and 'id="live"' in html
    assert 'id="chain"' not in html and "The chain" not in html
    assert re.search(r'id="live-notes"[^>]*hx-swap-oob="true"', html)
    assert re.search(r'id="live-side"[^>]*hx-swap-oob="true"', html)


def test_the_detail_poll_costs_the_same_queries_however_long_the_chain(client, user):
    def poll_queries(gen) -> int:
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(f"/generations/{gen.pk}/?v=stale", **htmx("live"))
        assert response.status_code == 200
        return len(ctx.captured_queries)

    alone = make_gen(Status.IN_PROGRESS, user=user)
    node = make_gen(user=user)
    for _ in range(5):
        node = make_gen(user=user, parent=node)
    deep = make_gen(Status.IN_PROGRESS, user=user, parent=node)
    assert poll_queries(deep) == poll_queries(alone)


# --- accessibility of the rendered forms ----------------------------------------------------------
class _Controls(HTMLParser):
    """Collects form controls, label targets, ids, and labels that wrap a control."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict] = []
        self.ids: set[str] = set()
        self.label_for: set[str] = set()
        self._open_labels = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if "id" in attributes:
            self.ids.add(attributes["id"])
        if tag == "label":
            self._open_labels += 1
            if attributes.get("for"):
                self.label_for.add(attributes["for"])
        if tag in ("input", "textarea", "select") and attributes.get("type") != "hidden":
            self.controls.append({**attributes, "wrapped": self._open_labels > 0})

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._open_labels -= 1


def test_every_form_control_is_labelled_and_described_by_ids_that_exist(client):
    gen = make_gen()
    pages = {
        "new": client.get(reverse("generation-new")),
        "new with errors": client.post(reverse("generation-new"), {"user_prompt": ""}),
        "detail": client.get(reverse("generation-detail", args=[gen.pk])),
        "inline extend": client.get(reverse("generation-extend", args=[gen.pk]), **htmx("x")),
        "password": client.get(reverse("password_change")),
        "login": Client().get(reverse("login")),
    }
    for name, response in pages.items():
        parser = _Controls()
        parser.feed(response.content.decode())
        assert parser.controls, name
        for control in parser.controls:
            label = control.get("aria-label")
            labelled = control["wrapped"] or control.get("id") in parser.label_for or label
            assert labelled, (name, control)
            for described in control.get("aria-describedby", "").split():
                assert described in parser.ids, (name, control.get("name"), described)


@pytest.mark.parametrize(
    ("prompt", "stem"),
    [
        ("A paper boat at dusk", "a-paper-boat-at-dusk"),
        ("Über-große Wellen! <b>bei Nacht</b>", "uber-groe-wellen-bbei-nachtb"),
        ("?!", "lumaweb"),
        ("word " * 40, "word-word-word-word-word-word-word-word"),
    ],
)
def test_a_download_is_named_for_its_prompt_not_a_bare_uuid(client, prompt, stem):
    """Issue 10 #5: "paper-boat-at-dusk-3f2a.mp4", on the card and on the detail page."""
    from generations.models import Status
    from tests.pages.conftest import make_gen

    gen = make_gen(Status.COMPLETED, user_prompt=prompt, video_file="videos/x.mp4")
    name = f"{stem}-{gen.pk.hex[:4]}.mp4"
    for url in ("/", f"/generations/{gen.pk}/"):
        assert f'download="{name}"' in client.get(url).content.decode(), url
