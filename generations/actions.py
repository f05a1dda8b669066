"""What people do: create, extend, retry, resolve, cancel, check or copy again, delete,
like.

Views, the JSON API, the admin and management commands call these functions; they check who may
do what, change rows through the named transitions of ``generations.pipeline.transitions`` and
wake a worker through ``generations.tasks`` once the change is committed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from generations import (
    audit,
    chain_files,
    chains,
    mediastore,
    money,
    pipeline,
    provider_fields,
    providers,
    tasks,
    webhooks,
)
from generations.inputs import GenerationRequest
from generations.models import (
    DEFAULT_ROLE,
    MAY_PAY_TWICE,
    AuditAction,
    DeletedSpending,
    Generation,
    Kind,
    Member,
    Role,
    ShareLink,
    Status,
    StatusEvent,
    SubmitKey,
    Team,
    Webhook,
)
from generations.pipeline import hold
from generations.pipeline import transitions as t

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.contrib.auth.models import User as Account

    # Who asks: ``request.user`` (the AUTH_USER_MODEL or AnonymousUser), or None for the
    # operator (management commands).
    User = Account | AnonymousUser | None

# The most jobs one request may queue (a batch of the create form or of the API).
MAX_BATCH = 20
RETRYABLE = (Status.FAILED, Status.NEEDS_ATTENTION, Status.CANCELLED)
DELETABLE = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


class ServiceError(Exception):
    """An action a person asked for that cannot be done; the message says why."""


class NotAllowed(ServiceError):
    """The person may not do this: the generation is someone else's, or their role does not
    allow spending (the API answers 403)."""


class OverBudget(ServiceError):
    """Queuing this would take the person or the team over this month's budget (the API
    answers 402 with ``budget``: what is left and what it would cost)."""

    def __init__(self, message: str, budget: dict[str, Any]) -> None:
        super().__init__(message)
        self.budget = budget


class AlreadySubmitted(ServiceError):
    """The same request was already made with this idempotency key: nothing new was queued.

    ``generations`` is what the first request made (a batch: several, oldest first; fewer, or
    none, if some have been deleted since), ``generation`` the first of them; callers answer
    with them as if this request had made them (the API: the same 201; a form: a redirect).
    """

    def __init__(self, generations: list[Generation]) -> None:
        super().__init__("This request was already sent; nothing new was queued.")
        self.generations = generations
        self.generation = generations[0] if generations else None


class KeyReused(ServiceError):
    """The idempotency key was already used for a different request: refused, so that a
    retried request can never be answered with a generation it did not ask for."""


class SecondChargeNotConfirmed(ServiceError):
    """A Retry that may pay a second time, asked for without the person's explicit say-so."""


def _who(user: User) -> str:
    return getattr(user, "username", "") or "someone"


def check_can_change(gen: Generation, user: User) -> None:
    """Retry, cancel, resolve and delete are for the generation's owner and admins (the
    ``admin`` role, superusers, and staff as before).

    ``user=None`` is the operator (management commands), who may do anything.
    """
    if user is None or getattr(user, "is_superuser", False) or getattr(user, "is_staff", False):
        return
    if Member.role_of(user) == Role.ADMIN:
        return
    if gen.created_by_id is None or gen.created_by_id != user.pk:
        raise NotAllowed("Only the person who made this job, or an admin, can change it.")


def may_spend(user: User) -> bool:
    """Whether this person may cause a paid POST (create, extend, retry): admins and creators.
    ``None`` is the operator (management commands)."""
    return user is None or Member.role_of(user) != Role.VIEWER


def check_can_spend(user: User) -> None:
    if not may_spend(user):
        raise NotAllowed(
            "Viewers cannot make, extend or retry videos (each one is paid for). "
            "Ask an admin to make you a creator."
        )


def _check_budget(owner: User, cost: int, generations: int = 1) -> None:
    """Refuse, before anything is queued, what would take ``owner`` (whose month the jobs
    count in) or the team over this month's budget: ``cost`` is what the ``generations`` asked
    for cost together, in the provider's unit (each row's price).

    Call it inside the transaction that then inserts or re-queues: it locks the team row, so
    every other create, extend and retry waits here until this one commits, and then counts
    its row too. That is what makes concurrent requests unable to overspend together.
    """
    team = Team.lock()
    person = owner if owner is not None and owner.is_authenticated else None
    if not money.limited(person, team):
        return  # no budget to break: the month need not be summed (scripts/bench_money.py)
    allowance = money.allowance(person, team, cost=cost)
    whose = allowance.short_of()
    if not whose:
        return
    left = allowance.person_left if whose == "person" else allowance.team_left
    subject = "your monthly budget" if whose == "person" else "the team's monthly budget"
    what = (
        f"Nothing queued: these {generations} videos would take"
        if generations > 1
        else "Not queued: this would take"
    )
    raise OverBudget(
        f"{what} {subject} over its limit. It costs {money.amount(cost)} and "
        f"{left or 0:,} are left this month (UTC). An admin can raise the budget.",
        {"exceeded": whose, **allowance.as_json()},
    )


def _budget_words(value: int | None) -> str:
    """A budget in words: "2,000,000 tokens", "5,000 credits" or "no limit"."""
    return "no limit" if value is None else money.amount(value)


class _Unchanged:
    """Leave this setting as it is (``set_member``); None means "no limit" for a budget."""


UNCHANGED = _Unchanged()


def check_is_admin(user: User) -> None:
    """Managing the team (roles, budgets) is for admins; ``None`` is the operator."""
    if user is not None and Member.role_of(user) != Role.ADMIN:
        raise NotAllowed("Only an admin can change roles and budgets.")


def set_member(
    actor: User,
    person: Account,
    *,
    role: str | _Unchanged = UNCHANGED,
    budget: int | _Unchanged | None = UNCHANGED,
) -> Member:
    """An admin sets a person's role and/or monthly budget (tokens; None for no limit). The
    row is made now if the person had only the defaults. Under the team row's lock, like the
    spending it governs: a create being decided finishes first, or sees the new budget."""
    check_is_admin(actor)
    if not isinstance(role, _Unchanged) and role not in Role.values:
        raise ServiceError(f"No role {role!r}: choose one of {', '.join(Role.values)}.")
    if isinstance(budget, int) and budget < 0:
        raise ServiceError(f"A budget is a number of {money.unit()} from 0, or none for no limit.")
    with transaction.atomic():
        Team.lock()
        member, _ = Member.objects.get_or_create(user=person)
        old_role, old_budget = member.role, member.monthly_budget
        if not isinstance(role, _Unchanged):
            # (A superuser stays an admin whatever the row says: nothing to guard.)
            demoted = role != Role.ADMIN and old_role == Role.ADMIN and not person.is_superuser
            if demoted and person.is_active:
                _check_not_last_admin(person, "make them a creator or a viewer")
            member.role = role
        if not isinstance(budget, _Unchanged):
            member.monthly_budget = budget
        member.save()
        name = person.get_username()
        if member.role != old_role:
            audit.record(
                actor,
                AuditAction.ROLE,
                f"{name}: role {old_role} -> {member.role}",
                subject=person,
                details={"old": old_role, "new": member.role},
            )
        if member.monthly_budget != old_budget:
            audit.record(
                actor,
                AuditAction.BUDGET,
                f"{name}: budget {_budget_words(old_budget)} -> "
                f"{_budget_words(member.monthly_budget)}",
                subject=person,
                details={"old": old_budget, "new": member.monthly_budget},
            )
    return member


def set_team_budget(actor: User, budget: int | None) -> Team:
    """An admin sets the whole team's monthly budget (tokens; None for no limit)."""
    check_is_admin(actor)
    if budget is not None and budget < 0:
        raise ServiceError(f"A budget is a number of {money.unit()} from 0, or none for no limit.")
    with transaction.atomic():
        team = Team.lock()
        old = team.monthly_budget
        team.monthly_budget = budget
        team.save(update_fields=["monthly_budget"])
        if old != budget:
            audit.record(
                actor,
                AuditAction.TEAM_BUDGET,
                f"Team budget {_budget_words(old)} -> {_budget_words(budget)}",
                details={"old": old, "new": budget},
            )
    return team


def active_admins() -> Q:
    """The people who can manage the team now: active, and admins (superusers always are)."""
    return Q(is_active=True) & (Q(is_superuser=True) | Q(member__role=Role.ADMIN))


def _check_not_last_admin(person: Account, what: str) -> None:
    """Never leave the team without an active admin (the page would have nobody to manage it).
    Called under the team row's lock, so two admins demoting each other are decided in turn."""
    others = get_user_model().objects.filter(active_admins()).exclude(pk=person.pk)
    if not others.exists():
        raise ServiceError(
            f"{person.get_username()} is the last active admin: you cannot {what}. "
            "Make someone else an admin first."
        )


def add_member(
    actor: User,
    username: str,
    password: str,
    *,
    role: str = DEFAULT_ROLE,
    budget: int | None = None,
) -> Account:
    """An admin adds a person: an account that can log in (the password checked by the
    site's password validators), with a role and a monthly budget (None: no limit)."""
    check_is_admin(actor)
    username = username.strip()
    if not username:
        raise ServiceError("A username is needed.")
    if role not in Role.values:
        raise ServiceError(f"No role {role!r}: choose one of {', '.join(Role.values)}.")
    if budget is not None and budget < 0:
        raise ServiceError(f"A budget is a number of {money.unit()} from 0, or none for no limit.")
    model = get_user_model()
    candidate = model(username=username)
    try:
        password_validation.validate_password(password, user=candidate)
    except ValidationError as exc:
        raise ServiceError(" ".join(exc.messages)) from None
    try:
        with transaction.atomic():
            Team.lock()
            if model.objects.filter(username__iexact=username).exists():
                raise ServiceError(f"There is already someone called {username!r}.")
            person = model.objects.create_user(username=username, password=password)
            Member.objects.create(user=person, role=role, monthly_budget=budget)
            audit.record(
                actor,
                AuditAction.MEMBER_ADDED,
                f"Added {username} as {role}, budget {_budget_words(budget)}",
                subject=person,
                details={"role": role, "budget": budget},
            )
    except IntegrityError:
        raise ServiceError(f"There is already someone called {username!r}.") from None
    return person


def set_active(actor: User, person: Account, active: bool) -> bool:
    """An admin deactivates a person (they can no longer log in, their API tokens stop
    working; their videos and history stay) or reactivates them. Not oneself, and never the
    last active admin. Returns whether anything changed."""
    check_is_admin(actor)
    if not active and actor is not None and actor.pk == person.pk:
        raise ServiceError("You cannot deactivate yourself; ask another admin.")
    with transaction.atomic():
        Team.lock()
        model = get_user_model()
        current = model.objects.filter(pk=person.pk).values_list("is_active", flat=True).first()
        if current is None:
            raise ServiceError("That person no longer exists.")
        if current == active:
            return False
        name = person.get_username()
        if not active and model.objects.filter(active_admins(), pk=person.pk).exists():
            _check_not_last_admin(person, "deactivate them")
        model.objects.filter(pk=person.pk).update(is_active=active)
        person.is_active = active
        audit.record(
            actor,
            AuditAction.MEMBER_REACTIVATED if active else AuditAction.MEMBER_DEACTIVATED,
            f"{'Reactivated' if active else 'Deactivated'} {name}",
            subject=person,
        )
        if not active:
            _revoke_share_links_of(actor, person)
    return True


def _revoke_share_links_of(actor: User, person: Account) -> None:
    """A deactivated person's public links stop with them (in the deactivation's transaction):
    nobody would be left to answer for what they published. Reactivating does not bring them
    back."""
    live = ShareLink.objects.live().filter(created_by_id=person.pk)
    ids = list(live.values_list("pk", flat=True))
    if not ids:
        return
    ShareLink.objects.filter(pk__in=ids).update(revoked_at=timezone.now())
    audit.record(
        actor,
        AuditAction.SHARE_REVOKED,
        f"Revoked {len(ids)} public link{'s' if len(ids) != 1 else ''} of {person.get_username()}"
        " (deactivated)",
        subject=person,
        details={"links": ids},
    )


@dataclasses.dataclass(frozen=True)
class Sources:
    """The videos a new generation is made from, and so its kind: none (a new video); ``parent``
    to continue (an extension); ``parent`` to lead into (``Kind.REVERSE``, what came before
    it); ``parent`` to ``end_parent`` (``Kind.INTERPOLATE``)."""

    kind: str = Kind.CREATE
    parent: Generation | None = None
    end_parent: Generation | None = None

    @classmethod
    def of(cls, parent: Generation | None) -> Sources:
        return cls(Kind.EXTEND, parent) if parent is not None else cls()

    def videos(self) -> list[Generation]:
        return [gen for gen in (self.parent, self.end_parent) if gen is not None]

    @property
    def what(self) -> str:
        """The new row, in the audit's words."""
        return {
            Kind.CREATE: "a video",
            Kind.EXTEND: "an extension",
            Kind.REVERSE: "what came before a video",
            Kind.INTERPOLATE: "an interpolation",
        }[Kind(self.kind)]

    @property
    def note(self) -> str:
        """The new row's first status note ("" for a new video: the batch says)."""
        parent = self.parent.pk if self.parent else None
        end = self.end_parent.pk if self.end_parent else None
        return {
            Kind.CREATE: "",
            Kind.EXTEND: f"extension of {parent}",
            Kind.REVERSE: f"what came before {parent}",
            Kind.INTERPOLATE: f"interpolation from {parent} to {end}",
        }[Kind(self.kind)]

    @property
    def refusal(self) -> str:
        """Why it cannot be made when a source is not a finished video the service knows."""
        return {
            Kind.EXTEND: "Only a finished video can be extended.",
            Kind.REVERSE: "Only a finished video can have what came before it made.",
            Kind.INTERPOLATE: "Only between two finished videos can an interpolation be made.",
        }.get(Kind(self.kind), "")

    def check_provider(self) -> None:
        """Refused (``ServiceError``) when the provider cannot make this kind."""
        provider = providers.current()
        can = {
            Kind.CREATE: True,
            Kind.EXTEND: provider.capabilities.extend,
            Kind.REVERSE: provider.capabilities.reverse_extend,
            Kind.INTERPOLATE: provider.capabilities.interpolate,
        }[Kind(self.kind)]
        if not can:
            raise ServiceError(f"{provider.label} cannot make {self.what}.")
        if self.kind == Kind.INTERPOLATE and (
            self.parent is None or self.end_parent is None or self.parent.pk == self.end_parent.pk
        ):
            raise ServiceError("An interpolation runs between two different videos.")


def _lock_sources(sources: Sources) -> tuple[str, str]:
    """The sources' upstream ids (parent's, end parent's), read with their rows locked, in one
    order (a delete of a source at the same moment waits for the new row); ``ServiceError``
    when one is not a finished video the service knows."""
    videos = sources.videos()
    if not videos:
        return "", ""
    found: dict[Any, str | None] = dict(
        Generation.objects.select_for_update()
        .filter(pk__in=[gen.pk for gen in videos], status=Status.COMPLETED, remote_id__isnull=False)
        .exclude(remote_id="")
        .order_by("pk")
        .values_list("pk", "remote_id")
    )
    if any(gen.pk not in found for gen in videos):
        raise ServiceError(sources.refusal)
    parent = found[sources.parent.pk] if sources.parent else ""
    end = found[sources.end_parent.pk] if sources.end_parent else ""
    return parent or "", end or ""


def request_fingerprint(
    request: GenerationRequest,
    parent: Generation | None = None,
    uploads: dict[int, str] | None = None,
    sources: Sources | None = None,
) -> str:
    """A digest of what is asked: the sources (the parent of an extension; the kind and the
    end video of what came before or of an interpolation) and every request field, an upload
    by its bytes (two posts of one form re-encode the same image to the same bytes).
    ``uploads`` keeps the digests of uploads already read (a batch's jobs share them)."""
    sources = sources or Sources.of(parent)
    known = {} if uploads is None else uploads
    values: dict[str, Any] = {}
    for name in request.field_names():
        value = getattr(request, name)
        if isinstance(value, File):
            if id(value) not in known:
                digest = hashlib.sha256()
                for chunk in value.chunks():  # (from the start: File.chunks seeks to 0)
                    digest.update(chunk)
                known[id(value)] = "sha256:" + digest.hexdigest()
            value = known[id(value)]
        values[name] = value
    asked: dict[str, Any] = {
        "parent": str(sources.parent.pk) if sources.parent else None,
        "request": values,
    }
    if sources.kind not in (Kind.CREATE, Kind.EXTEND):  # (the digests of before stay the same)
        asked["kind"] = str(sources.kind)
        asked["end_parent"] = str(sources.end_parent.pk) if sources.end_parent else None
    raw = json.dumps(asked, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def batch_fingerprint(
    requests: list[GenerationRequest],
    parent: Generation | None = None,
    sources: Sources | None = None,
) -> str:
    """The digest of a batch: a batch of one is that one request (the same key for the same
    single request, whichever way it was asked); else every request's digest, in order."""
    if len(requests) == 1:
        return request_fingerprint(requests[0], parent, sources=sources)
    uploads: dict[int, str] = {}  # each shared upload read once
    digests = [
        request_fingerprint(request, parent, uploads, sources=sources) for request in requests
    ]
    return hashlib.sha256(("batch:" + ",".join(digests)).encode()).hexdigest()


def _claim_key(person: Account, key: str, fingerprint: str) -> SubmitKey:
    """Take ``key`` for this request, inside the caller's transaction, or raise what the first
    request with it did. Two requests at the same moment: the database's unique (person, key)
    makes the second INSERT wait for the first transaction; once that commits, the second finds
    the key (and its generation, committed with it) and raises ``AlreadySubmitted``."""
    row, made = SubmitKey.objects.get_or_create(
        user=person, key=key, defaults={"fingerprint": fingerprint}
    )
    if made:
        return row
    if row.fingerprint != fingerprint:
        raise KeyReused(
            "This key was already used for a different request; nothing was queued. "
            "Use a new key for a new request."
        )
    raise AlreadySubmitted(list(row.generations.order_by("created_at", "pk")))


def create_generation(
    user: User,
    request: GenerationRequest,
    *,
    parent: Generation | None = None,
    idempotency_key: str | None = None,
    sources: Sources | None = None,
) -> Generation:
    """Queue a new generation (or, with ``parent``, an extension; with ``sources``, any kind):
    ``create_generations`` of one request."""
    return create_generations(
        user, [request], parent=parent, idempotency_key=idempotency_key, sources=sources
    )[0]


def create_generations(
    user: User,
    requests: list[GenerationRequest],
    *,
    parent: Generation | None = None,
    idempotency_key: str | None = None,
    sources: Sources | None = None,
) -> list[Generation]:
    """Queue new generations (or, with ``parent``, extensions): one, or a batch of up to
    ``MAX_BATCH``, all or nothing. Nothing is sent yet: a worker is woken for each after the
    commit, and each row is stamped as enqueued in its INSERT.

    Refused (``NotAllowed``) for a viewer, and (``OverBudget``) when the whole batch would take
    the person or the team over this month's budget: checked with the team row locked, in the
    same transaction as the INSERTs, so a batch is queued whole or not at all.

    With ``idempotency_key`` (a person's, from the API's ``Idempotency-Key`` header or a form's
    one-time key), the key covers the whole batch: the same key and requests again raise
    ``AlreadySubmitted`` with what the first request made, and the same key with other
    requests raises ``KeyReused``: a double-click, a re-posted form or a client's retry never
    queues (and pays for) a second batch. Keys belong to a person; the operator (``user=None``)
    has none.

    The rows of a batch share its keyframe uploads: stored once with the first row, then named
    by the others (a delete keeps a keyframe another row still uses).

    ``sources`` (or ``parent`` alone: an extension) names the videos it is made from: each must
    be a finished video the service knows, and its upstream id is copied onto the new row. A
    kind or a request option the provider cannot do is refused (``ServiceError``).
    """
    check_can_spend(user)
    sources = sources or Sources.of(parent)
    parent = sources.parent
    if not requests:
        raise ServiceError("Nothing to queue.")
    sources.check_provider()
    for request in requests:
        if refused := provider_fields.unsupported(request):
            raise ServiceError(" ".join(provider_fields.refusal(name) for name in refused))
    if len(requests) > MAX_BATCH:
        raise ServiceError(
            f"That is {len(requests)} videos; one batch makes at most {MAX_BATCH}. "
            "Nothing was queued."
        )
    person = None if user is None or isinstance(user, AnonymousUser) else user
    made: list[Generation] = []
    with transaction.atomic():
        Team.lock()  # first: every spender takes the team lock before any row lock
        key_row = None
        if idempotency_key and person is not None:
            # A replay answers with the first generations even if, since then, their parent can
            # no longer be extended or the budget is spent: nothing new is queued by it.
            key_row = _claim_key(
                person, idempotency_key, batch_fingerprint(requests, sources=sources)
            )
        prices = [money.price(request) for request in requests]
        _check_budget(user, cost=sum(prices), generations=len(requests))
        # Locked: a delete of a source at the same moment waits for this row.
        parent_remote_id, end_parent_remote_id = _lock_sources(sources)
        stored: dict[str, Any] = {}
        for request, cost in zip(requests, prices, strict=True):
            if stored:
                request = dataclasses.replace(request, **stored)
            gen = Generation.objects.create(
                created_by=person,
                submit_key=key_row,
                parent=parent,
                # Copied, so the row can be sent even if its sources are deleted meanwhile.
                parent_remote_id=parent_remote_id,
                end_parent=sources.end_parent,
                end_parent_remote_id=end_parent_remote_id,
                kind=sources.kind,
                status=Status.QUEUED,
                enqueued_at=timezone.now(),
                unit_cost=cost,  # what one POST of it costs, in the provider's unit
                **request.row_fields(),
            )
            if not made:  # the uploads, now stored: the other rows name the same files
                stored = {
                    name: getattr(gen, name).name
                    for name in GenerationRequest.uploads()
                    if getattr(gen, name)
                }
            StatusEvent.objects.create(
                generation=gen,
                at=gen.created_at,
                status=Status.QUEUED,
                note=sources.note
                or ("created" if len(requests) == 1 else f"created in a batch of {len(requests)}"),
            )
            audit.record(
                user,
                AuditAction.SPENT,
                f"Queued {sources.what}: {money.amount(cost)}",
                subject=person,
                generation=gen.pk,
                details={"kind": gen.kind, "cost": cost, "prompt": gen.user_prompt[:100]},
            )
            tasks.wake_submit_on_commit(gen.pk)
            made.append(gen)
    for gen in made:
        t.plog(gen.pk, "queued kind=%s", gen.kind)
    return made


def extend_generation(
    parent: Generation,
    user: User,
    request: GenerationRequest,
    *,
    idempotency_key: str | None = None,
) -> Generation:
    return create_generation(user, request, parent=parent, idempotency_key=idempotency_key)


def reverse_extend_generation(
    source: Generation,
    user: User,
    request: GenerationRequest,
    *,
    idempotency_key: str | None = None,
) -> Generation:
    """Queue what came before ``source``: a new clip that ends where it begins (its parent is
    ``source``). Extend's rules: who may spend, the budget, the key, a finished source."""
    return create_generation(
        user,
        request,
        sources=Sources(Kind.REVERSE, source),
        idempotency_key=idempotency_key,
    )


def interpolate_generations(
    start: Generation,
    end: Generation,
    user: User,
    request: GenerationRequest,
    *,
    idempotency_key: str | None = None,
) -> Generation:
    """Queue a clip that gets from ``start`` to ``end`` (parent ``start``, end parent ``end``).
    Extend's rules: who may spend, the budget, the key, two finished sources."""
    return create_generation(
        user,
        request,
        sources=Sources(Kind.INTERPOLATE, start, end),
        idempotency_key=idempotency_key,
    )


SECOND_CHARGE_WORDS = (
    "This job's request may already have reached the service (and been charged): retrying "
    "may charge a second time. Read the warning and confirm the retry."
)


def retry_generation(
    gen: Generation, user: User = None, *, confirm_second_charge: bool = False, via: str = ""
) -> Generation:
    """Send a failed or needs-attention generation again: a person's say-so for one more POST.

    For a needs-attention row this may pay twice (the first request may have started a job);
    the page says so before the button is pressed. The one more POST is checked against the
    budget of the job's owner (whose month it counts in) and the team's, like a create.
    When an earlier POST of this row may have been charged (``Generation.retry_may_pay_twice``:
    needs attention, or failed/cancelled with such a POST still counted), the retry may pay
    twice: it is refused (``SecondChargeNotConfirmed``) unless ``confirm_second_charge`` says
    the person read the warning and agreed. The test is made again in the UPDATE itself, so a row
    that became such a row after the page was drawn is not retried on an unconfirmed say-so.
    The audit log records the spending and, for such a row, who authorised it (``via``: which
    path, e.g. "admin" or "command").
    """
    check_can_spend(user)
    check_can_change(gen, user)
    if gen.status not in RETRYABLE:
        raise ServiceError("Only a failed, cancelled or needs-attention job can be retried.")
    if gen.retry_may_pay_twice and not confirm_second_charge:
        raise SecondChargeNotConfirmed(SECOND_CHARGE_WORDS)
    if gen.kind == Kind.EXTEND and (gen.parent is None or not gen.parent.can_extend):
        # A removed parent: its owner deleted it, so no new POST extends it on their behalf.
        raise ServiceError("The video this extends is no longer available to extend.")
    if gen.kind in (Kind.REVERSE, Kind.INTERPOLATE) and any(
        source is None or not source.can_extend
        for source in (gen.parent, *([gen.end_parent] if gen.kind == Kind.INTERPOLATE else []))
    ):
        # The same for a video made from others: a removed source is sent on nobody's behalf.
        raise ServiceError("A video this is made from is no longer available.")
    with transaction.atomic():
        # The row moves into this month with whatever of its earlier POSTs still counts (a
        # possibly charged one, say): the check counts those too, not only the one more POST.
        brought = 0
        if gen.billed_at < money.month_window()[0]:
            brought = money.row_units(Generation.objects.filter(pk=gen.pk))["spent"]
        # Priced again now (the row's earlier POSTs, still counted, at that price too).
        cost = money.price(GenerationRequest.from_row(gen))
        _check_budget(gen.created_by, cost=cost * (1 + brought), generations=1 + brought)
        # Bookkeeping for the money, before the row is cleared for the next POST: a POST the
        # service failed after starting was refunded, and the row now counts in this month.
        Generation.objects.filter(pk=gen.pk, status=gen.status).update(
            billed_at=timezone.now(),
            posts_refunded=money.REFUNDED,
            unit_cost=cost,
        )
        if not t.authorise_another_post(
            gen.pk,
            gen.status,
            note=f"retry requested by {_who(user)}"
            + (" (may pay twice: confirmed)" if gen.retry_may_pay_twice else ""),
            only_if=None if confirm_second_charge else ~MAY_PAY_TWICE,
        ):
            raise ServiceError("This job changed in the meantime; reload and try again.")
        owner = gen.created_by
        audit.record(
            user,
            AuditAction.SPENT,
            f"Retried a job: {money.amount(cost)}",
            subject=owner,
            generation=gen.pk,
            details={"kind": "retry", "cost": cost, "from_status": gen.status},
        )
        if gen.retry_may_pay_twice:
            audit.record(
                user,
                AuditAction.SECOND_CHARGE,
                f"Authorised a retry that may pay twice ({gen.get_status_display().lower()} job)",
                subject=owner,
                generation=gen.pk,
                details={
                    "from_status": gen.status,
                    "posts_sent": gen.posts_sent,
                    "cost": cost,
                    **({"via": via} if via else {}),
                },
            )
        tasks.wake_submit_on_commit(gen.pk)
    gen.refresh_from_db()
    return gen


def mark_failed(gen: Generation, user: User = None, note: str = "") -> Generation:
    """A person decides a needs-attention job is not to be sent again."""
    check_can_change(gen, user)
    if not t.fail(
        gen.pk,
        [Status.NEEDS_ATTENTION],
        note=note or f"marked failed by {_who(user)}",
        error=gen.error or "Marked failed by a person",
    ):
        raise ServiceError("Only a job that needs attention can be marked failed.")
    gen.refresh_from_db()
    return gen


def check_again(gen: Generation, user: User = None) -> Generation:
    """A person asks lumaweb to look at a job that timed out once more: it is polled again (a
    GET, free) with a fresh deadline; if the service now says it completed, it completes and
    its copy follows. Never a new POST, so never a second charge. The next poll round (beat,
    every LUMA_POLL_INTERVAL) takes it: no wake-up to send."""
    check_can_change(gen, user)
    if not t.check_again(gen.pk, note=f"check again requested by {_who(user)}"):
        raise ServiceError(
            "Only a job that timed out waiting for the service can be checked again."
        )
    gen.refresh_from_db()
    return gen


def copy_again(gen: Generation, user: User = None) -> Generation:
    """A person asks for the local copy of a finished video again, after it was given up on
    (its link expired and the service had no new one then, the download kept failing…). Free:
    the copy step asks the service for fresh links if the old ones have expired."""
    check_can_change(gen, user)
    with transaction.atomic():
        if not t.copy_again(gen.pk, note=f"copy again requested by {_who(user)}"):
            raise ServiceError(
                "Only a finished video whose copy was given up on can be copied again."
            )
        tasks.wake_copy_on_commit(gen.pk)
    gen.refresh_from_db()
    return gen


def cancel_generation(gen: Generation, user: User = None) -> Generation:
    """Cancel a job that has not been sent yet."""
    check_can_change(gen, user)
    if not t.cancel(gen.pk, note=f"cancelled by {_who(user)}"):
        raise ServiceError("Only a queued job can be cancelled; this one has already been sent.")
    gen.refresh_from_db()
    return gen


def delete_generation(gen: Generation, user: User = None) -> None:
    """Delete a finished, failed or cancelled generation and its local files.

    Jobs in flight cannot be deleted (they are being paid for). A video that others extend can:
    nobody may block its owner's delete by extending it. The extensions keep their own videos
    and say that what they extended was removed (``parent_removed_at``; ``kept_ancestor``
    skips past the removed link so the chain keeps its place); one still queued was given the
    parent's upstream id when it was made, so it is sent all the same, but a retry of one that
    failed is refused. The checks and the delete happen on the locked row, so a retry or an
    extension arriving at the same moment cannot slip in between. A keyframe another row still
    uses (a late answer's row, "generate again") is kept.
    """
    check_can_change(gen, user)
    with transaction.atomic():
        row = Generation.objects.select_for_update().filter(pk=gen.pk).first()
        if row is None:
            return
        if row.status == Status.NEEDS_ATTENTION:
            raise ServiceError("Resolve this job first: retry it or mark it failed.")
        if row.status not in DELETABLE:
            raise ServiceError(
                "A job in flight cannot be deleted; cancel it or wait until it ends."
            )
        joined = chains.below(row)  # whose joined chain files hold its clip (before relinking)
        kept = row.parent_id or row.kept_ancestor_id  # the nearest ancestor still kept
        row.extensions.update(parent=None, parent_removed_at=timezone.now(), kept_ancestor=kept)
        Generation.objects.filter(kept_ancestor=row).update(kept_ancestor=kept)
        files = [f for f in (row.video_file, row.thumbnail_file) if f]
        files += [f for f in _keyframes(row) if not _keyframe_shared(row, f.name)]
        units = _keep_cost(row)
        cost = money.row_price(row)
        owner = row.created_by
        audit.record(
            user,
            AuditAction.DELETED,
            f"Deleted {_quote(row.user_prompt)} ({money.amount(units['spent'] * cost)} spent)",
            subject=owner,
            generation=row.pk,
            details={
                "prompt": row.user_prompt[:100],
                "status": row.status,
                "owner": owner.get_username() if owner is not None else None,
                "spent": units["spent"] * cost,
                "possibly": units["possibly"] * cost,
                "refunded": units["refunded"] * cost,
            },
        )
        row.delete()
    for stored in files:
        stored.storage.delete(stored.name)
        mediastore.forget_local(stored.name)  # MEDIA_STORAGE=s3: this machine's copy too
    chain_files.remove_joins(joined)  # no copy of its frames stays behind in a joined chain
    t.plog(gen.pk, "deleted by %s", getattr(user, "username", "") or "an operator")


def _keep_cost(row: Generation) -> dict[str, int]:
    """A deleted job's cost stays in its month: deleting videos gives no budget back. Returns
    its spent, possibly and refunded POSTs (kept with the row's price: the amounts stay)."""
    units = money.row_units(Generation.objects.filter(pk=row.pk))
    if any(units.values()):
        DeletedSpending.objects.create(
            user_id=row.created_by_id, billed_at=row.billed_at, unit_cost=row.unit_cost, **units
        )
    return units


def _quote(prompt: str) -> str:
    short = " ".join(prompt.split())
    return f"“{short[:60]}…”" if len(short) > 60 else f"“{short}”"


def _keyframes(row: Generation) -> list[Any]:
    return [getattr(row, name) for name in GenerationRequest.uploads() if getattr(row, name)]


def _keyframe_shared(row: Generation, name: str) -> bool:
    others = Generation.objects.exclude(pk=row.pk)
    return any(others.filter(**{field: name}).exists() for field in GenerationRequest.uploads())


def toggle_like(gen: Generation, user: AbstractBaseUser) -> bool:
    """Like or unlike for this user; returns whether it is now liked.

    Decided by the delete itself (it removed a like, or there was none), so two clicks at
    the same moment toggle twice instead of both reading the same state.
    """
    likes = Generation.liked_by.through.objects
    removed, _ = likes.filter(generation_id=gen.pk, user_id=user.pk).delete()
    if removed:
        return False
    likes.get_or_create(generation_id=gen.pk, user_id=user.pk)
    return True


# --- the account hold ----------------------------------------------------------------------------
def is_admin(user: User) -> bool:
    """Who may lift the account hold or cancel everyone's waiting jobs: the team's admins
    (superusers are admins) and the operator, ``user=None``."""
    return user is None or (user.is_authenticated and Member.role_of(user) == Role.ADMIN)


def _check_admin(user: User) -> None:
    if not is_admin(user):
        raise NotAllowed("Only an admin can resume the account or cancel the waiting jobs.")


def resume_account(user: User) -> bool:
    """Lift the account hold now (the credits were topped up, the key fixed): every waiting job
    is sent at once. Returns whether there was a hold. If the account is still refused, the
    first job sent puts it on hold again; nothing is failed."""
    _check_admin(user)
    with transaction.atomic():
        lifted = hold.lift(f"resumed by {_who(user)}", actor=user)
        if lifted:
            tasks.wake_sweep_on_commit()
    return lifted


def cancel_waiting(user: User) -> int:
    """Cancel every job that waits to be sent (queued, nothing sent for it): for a team that
    would rather not have them go when the account comes back. The hold itself stays until a
    job goes through or an admin resumes. Returns how many were cancelled."""
    _check_admin(user)
    cancelled = 0
    note = f"cancelled with every waiting job by {_who(user)}"
    with transaction.atomic():
        waiting = list(Generation.objects.waiting_out_a_hold().values_list("pk", flat=True))
        for pk in waiting:
            cancelled += t.cancel(pk, note=note)
        audit.record(
            user,
            AuditAction.CANCEL_WAITING,
            f"Cancelled {cancelled} waiting job{'s' if cancelled != 1 else ''}",
            details={"cancelled": cancelled},
        )
    t.log.info("%s waiting jobs cancelled by %s", cancelled, _who(user))
    return cancelled


# --- outbound webhooks (admins and the operator) --------------------------------------------------
def _check_webhook_admin(user: User) -> None:
    if not is_admin(user):
        raise NotAllowed("Only an admin can manage webhooks.")


def add_webhook(
    user: User, url: str, secret: str, events: str | list[str] | None = None
) -> Webhook:
    """A webhook for ``url``, signed with ``secret``. The address is refused if it leads to a
    private or loopback address (unless WEBHOOK_ALLOW_PRIVATE); ``webhooks.BadTarget`` says
    why (a ``ServiceError`` here)."""
    _check_webhook_admin(user)
    url = url.strip()
    try:
        if len(url) > 2000:
            raise webhooks.BadTarget("The address is longer than 2,000 characters.")
        chosen = webhooks.parse_events(events)
        secret = webhooks.check_secret(secret)
        webhooks.check_target(url)
    except webhooks.BadTarget as exc:
        raise ServiceError(str(exc)) from None
    creator = user if user is not None and user.is_authenticated else None
    return Webhook.objects.create(
        url=url, secret=secret, events=",".join(chosen), created_by=creator
    )


def set_webhook_active(user: User, pk: int, active: bool) -> Webhook:
    """Pause or resume a webhook. Paused, it is told of no new event, and its pending
    deliveries wait (not due, no attempt counted: the retry schedule does not run down);
    resumed, those due go out at once (woken after the commit; the sweeper sends any the
    broker lost) and the others at their time."""
    _check_webhook_admin(user)
    with transaction.atomic():
        hook = Webhook.objects.select_for_update().filter(pk=pk).first()
        if hook is None:
            raise ServiceError(f"There is no webhook {pk}.")
        Webhook.objects.filter(pk=pk).update(active=active)
        hook.active = active
        if active:
            tasks.wake_deliveries_on_commit(pipeline.wake_resumed_webhook(pk, timezone.now()))
    return hook


def remove_webhook(user: User, pk: int) -> None:
    """Delete a webhook and its delivery log."""
    _check_webhook_admin(user)
    if not Webhook.objects.filter(pk=pk).delete()[0]:
        raise ServiceError(f"There is no webhook {pk}.")
