"""the user context's email keys: compared after NFKC and case folding, domains in ASCII

Keys made before compared addresses by case only: ``ａdmin@`` (fullwidth) was another account
than ``admin@``, and an internationalised domain spelt in Unicode (``ada@bücher.de``) had a key
that logins, which now fold it to its ASCII form, would never find. Each key is recomputed by
the rule of ``contexts.user.domain.model.email_key`` (copied here, as it is today, so this
revision keeps meaning what it meant, as migrations import no context's code): the local part
folded, the domain in ASCII as registration stores it (IDNA 2008 with UTS 46, ``ß`` and final
``ς`` kept). Where the new rule gives one key to two accounts (a lookalike registered beside
the original), the oldest account gets it and the others keep their old key: they are the
lookalikes, and no login reaches them any more. The upgrade logs them (a warning naming each
account's id and the account that kept the key), so the operator can tell their owners.

Revision ID: user_0004
Revises: user_0003
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import idna
import sqlalchemy as sa
import structlog
from alembic import op

revision = "user_0004"
down_revision = "user_0003"
branch_labels = None
depends_on = None

logger = structlog.get_logger(__name__)

USERS = sa.table(
    "user_users",
    sa.column("id"),
    sa.column("email", sa.String),
    sa.column("email_key", sa.String),
    sa.column("created_at"),
)


def _folded(text: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def _key(email: str) -> str:
    local, at, domain = email.strip().rpartition("@")
    if not at:
        return _folded(domain)
    try:
        domain = idna.encode(domain, uts46=True, std3_rules=False, transitional=False).decode("ascii")
    except idna.IDNAError:
        domain = _folded(domain)
    return f"{_folded(local)}@{domain}"


def _rekey(rule: Callable[[str], str]) -> dict[str, str]:
    """Gives each account the key ``rule`` makes of its email, unless an older account already
    holds that key; returns those left with their old key, each with the account holding it."""
    bind = op.get_bind()
    rows = bind.execute(sa.select(USERS.c.id, USERS.c.email, USERS.c.email_key).order_by(USERS.c.created_at)).all()
    wanted = {row.id: rule(row.email) for row in rows}
    holders = {row.email_key: row.id for row in rows if wanted[row.id] == row.email_key}
    left: dict[str, str] = {}
    for row in rows:
        key = wanted[row.id]
        if key == row.email_key:
            continue
        if key in holders:
            left[str(row.id)] = str(holders[key])
            holders[row.email_key] = row.id
            continue
        holders.pop(row.email_key, None)
        holders[key] = row.id
        bind.execute(sa.update(USERS).where(USERS.c.id == row.id).values(email_key=key))
    return left


def upgrade() -> None:
    left = _rekey(_key)
    if left:
        logger.warning(
            "lookalike accounts kept their old email key: no login reaches them",
            accounts=[{"id": account, "same_address_as": holder} for account, holder in left.items()],
        )


def downgrade() -> None:
    # The old rule is finer than the new one: keys distinct under the new rule stay distinct.
    _rekey(lambda email: email.strip().casefold())
