"""The Team page (admins only): the members with their roles, budgets and this month's usage;
forms to add a person, change a role or a budget, deactivate or reactivate, set the team's
budget; and the audit log (paged, filtered, CSV export).

Every change goes through ``generations.actions`` (which checks who may, keeps the last active
admin, and writes the audit entry in the same transaction); the figures are ``money``'s. Each
form is a plain POST that redirects (or, with errors, draws the page again with them, 400);
with htmx it answers the page's main part to swap, and the middleware adds the toasts.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST

from generations import actions, money, queries
from generations.forms import AddMemberForm, MemberForm, TeamBudgetForm
from generations.htmx import HtmxHttpRequest, render_for_target
from generations.models import AuditAction, Role
from generations.templatetags.studio import safe_cell

TEMPLATE = "generations/team.html"
NOT_AN_ADMIN = "The Team page is for admins. Ask an admin of this lumaweb if you need a change."


def _refused(request: HtmxHttpRequest) -> HttpResponse | None:
    """Anyone but an admin gets the branded 403 page, saying why."""
    if not actions.is_admin(request.user):
        return render(request, "403.html", {"reason": NOT_AN_ADMIN}, status=403)
    return None


def _member_form(person: Any, role: str, budget: int | None) -> MemberForm:
    return MemberForm(initial={"role": role, "budget": _typed(budget)}, auto_id=_ids(person.pk))


def _typed(budget: int | None) -> str:
    """A budget as the form shows it: "2,000,000", or empty for no limit."""
    return "" if budget is None else f"{budget:,}"


def _ids(pk: int) -> str:
    """Element ids of one member's form: every row of the table has one."""
    return f"member-{pk}-%s"


def _context(
    request: HtmxHttpRequest,
    *,
    add_form: AddMemberForm | None = None,
    budget_form: TeamBudgetForm | None = None,
    bound: MemberForm | None = None,
    bound_pk: int | None = None,
) -> dict[str, Any]:
    view = queries.team()
    admins = sum(1 for row in view.members if row.person.is_active and row.role == Role.ADMIN)
    rows = [
        {
            "row": row,
            "form": bound
            if bound is not None and row.person.pk == bound_pk
            else _member_form(row.person, row.role, row.budget),
            "is_self": row.person.pk == request.user.pk,
            "last_admin": row.person.is_active and row.role == Role.ADMIN and admins <= 1,
            "open": bound is not None and row.person.pk == bound_pk,
        }
        for row in view.members
    ]
    audit = queries.audit_page(request.GET.get("action", ""), request.GET.get("before", ""))
    return {
        "team": view,
        "rows": rows,
        "add_form": add_form or AddMemberForm(auto_id="add-%s"),
        "budget_form": budget_form
        or TeamBudgetForm(initial={"budget": _typed(view.team_budget)}, auto_id="team-%s"),
        "audit": audit,
        "audit_actions": AuditAction.choices,
    }


def _answer(request: HtmxHttpRequest, ok: bool, **forms: Any) -> HttpResponse:
    """After a form: with htmx, the page's main part (errors shown in their form); without,
    a redirect when it worked, else the whole page again with the errors (400)."""
    if request.htmx:
        return render(request, f"{TEMPLATE}#main", _context(request, **forms))
    if ok:
        return redirect("team")
    return render(request, TEMPLATE, _context(request, **forms), status=400)


@require_GET
def team(request: HtmxHttpRequest) -> HttpResponse:
    if refused := _refused(request):
        return refused
    return render_for_target(request, TEMPLATE, _context(request), {"audit-log": "audit"})


@sensitive_post_parameters("password")
@require_POST
def add_member(request: HtmxHttpRequest) -> HttpResponse:
    if refused := _refused(request):
        return refused
    form = AddMemberForm(request.POST, auto_id="add-%s")
    if form.is_valid():
        data = form.cleaned_data
        try:
            person = actions.add_member(
                request.user,
                data["username"],
                data["password"],
                role=data["role"],
                budget=data["budget"],
            )
        except actions.ServiceError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Added {person.get_username()} as {data['role']}.")
            return _answer(request, True)
    messages.error(request, "The person was not added: see the form.")
    return _answer(request, False, add_form=form)


@require_POST
def change_member(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    if refused := _refused(request):
        return refused
    person = get_object_or_404(get_user_model(), pk=pk)
    form = MemberForm(request.POST, auto_id=_ids(pk))
    if form.is_valid():
        try:
            actions.set_member(
                request.user,
                person,
                role=form.cleaned_data["role"],
                budget=form.cleaned_data["budget"],
            )
        except actions.ServiceError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Saved {person.get_username()}'s role and budget.")
            return _answer(request, True)
    reason = " ".join(str(e) for e in form.non_field_errors()) or "see the form"
    messages.error(request, f"{person.get_username()} was not changed: {reason}")
    return _answer(request, False, bound=form, bound_pk=pk)


@require_POST
def set_active(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    if refused := _refused(request):
        return refused
    person = get_object_or_404(get_user_model(), pk=pk)
    choice = request.POST.get("active")
    if choice not in ("yes", "no"):  # never deactivate by default on a missing or odd field
        messages.error(request, "Say active=yes or active=no; nobody was changed.")
        return _answer(request, False)
    active = choice == "yes"
    name = person.get_username()
    try:
        changed = actions.set_active(request.user, person, active)
    except actions.ServiceError as exc:
        messages.error(request, str(exc))
        return _answer(request, False)
    if not changed:
        messages.info(request, f"{name} was already {'active' if active else 'deactivated'}.")
    elif active:
        messages.success(request, f"Reactivated {name}: they can log in again.")
    else:
        messages.success(
            request, f"Deactivated {name}: they cannot log in and their API tokens stop working."
        )
    return _answer(request, True)


@require_POST
def team_budget(request: HtmxHttpRequest) -> HttpResponse:
    if refused := _refused(request):
        return refused
    form = TeamBudgetForm(request.POST, auto_id="team-%s")
    if form.is_valid():
        budget = form.cleaned_data["budget"]
        try:
            actions.set_team_budget(request.user, budget)
        except actions.ServiceError as exc:
            form.add_error(None, str(exc))
        else:
            words = "no limit" if budget is None else f"{money.amount(budget)} a month"
            messages.success(request, f"Team budget: {words}.")
            return _answer(request, True)
    messages.error(request, "The team budget was not changed: see the form.")
    return _answer(request, False, budget_form=form)


@require_GET
def audit_csv(request: HtmxHttpRequest) -> HttpResponse:
    """The audit log (the page's filter applied), every entry, newest first."""
    if refused := _refused(request):
        return refused
    rows = queries.audit_entries(request.GET.get("action", ""))
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="lumaweb-audit-{stamp}.csv"'
    writer = csv.writer(response)
    writer.writerow(["at (UTC)", "who", "action", "person", "generation", "summary", "details"])
    for entry in rows.iterator(chunk_size=500):
        writer.writerow(
            [
                safe_cell(entry.at.astimezone(UTC).isoformat(timespec="seconds")),
                safe_cell(entry.actor_name),
                safe_cell(entry.action),
                safe_cell(entry.subject_name),
                safe_cell(entry.generation_id or ""),
                safe_cell(entry.summary),
                safe_cell(json.dumps(entry.details, sort_keys=True) if entry.details else ""),
            ]
        )
    return response
