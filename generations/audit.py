"""The audit log of money-relevant actions (and of what makes videos public: share links made
and revoked): one function, ``record``, called inside the transaction of the change it records
(so an entry exists exactly when the change does).

A low layer (right above ``models``, beside ``money``), so that ``actions`` (what people do) and
``pipeline.hold`` (what lumaweb does by itself: a hold begins, a probe lifts it) write the same
entries. Who acted is a person, the operator (``None``: a management command) or lumaweb itself
(``SYSTEM``); their name is kept as text, so the entry survives the person's deletion.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, cast

from django.contrib.auth.models import AnonymousUser

from generations.models import AuditAction, AuditEntry

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import User

OPERATOR = "operator"  # a management command (``user=None`` in ``actions``)
SYSTEM = "lumaweb"  # lumaweb by itself (the pipeline)


def actor_name(actor: AbstractBaseUser | AnonymousUser | str | None) -> str:
    if actor is None:
        return OPERATOR
    if isinstance(actor, str):
        return actor
    return actor.get_username() or "someone"


def _person(who: AbstractBaseUser | AnonymousUser | str | None) -> User | None:
    if who is None or isinstance(who, str | AnonymousUser) or not who.is_authenticated:
        return None
    return cast("User", who)


def record(
    actor: AbstractBaseUser | AnonymousUser | str | None,
    action: AuditAction,
    summary: str,
    *,
    subject: AbstractBaseUser | AnonymousUser | None = None,
    generation: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry. Call it inside the transaction that makes the change."""
    person = _person(actor)
    return AuditEntry.objects.create(
        actor=person,
        actor_name=actor_name(actor)[:150],
        action=action,
        subject=_person(subject),
        subject_name=subject.get_username()[:150] if subject is not None else "",
        generation_id=generation,
        details=details or {},
        summary=summary[:300],
    )
