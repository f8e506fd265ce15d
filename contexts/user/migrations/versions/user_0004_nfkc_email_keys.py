"""the user context's email keys: compared after NFKC and case folding, domains in ASCII

Keys made before compared addresses by case only: ``ａdmin@`` (fullwidth) was another account
than ``admin@``, and an internationalised domain spelt in Unicode (``ada@bücher.de``) had a key
that logins, which now fold it to its ASCII form, would never find. Each key is recomputed by
the rule of ``contexts.user.domain.model.email_key`` (copied here, as it is today, so this
revision keeps meaning what it meant). Where the new rule gives one key to two accounts (a
lookalike registered beside the original), the oldest account gets it and the others keep
their old key: they are the lookalikes, and no login reaches them any more.

Revision ID: user_0004
Revises: user_0003
"""

from __future__ import annotations

import contextlib
import unicodedata
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "user_0004"
down_revision = "user_0003"
branch_labels = None
depends_on = None

USERS = sa.table(
    "user_users",
    sa.column("id"),
    sa.column("email", sa.String),
    sa.column("email_key", sa.String),
    sa.column("created_at"),
)


def _key(email: str) -> str:
    key = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", email).casefold()).strip()
    local, at, domain = key.rpartition("@")
    if at and not domain.isascii():
        with contextlib.suppress(UnicodeError):
            domain = domain.encode("idna").decode("ascii")
    return f"{local}{at}{domain}"


def _rekey(rule: Callable[[str], str]) -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(USERS.c.id, USERS.c.email, USERS.c.email_key).order_by(USERS.c.created_at)).all()
    wanted = {row.id: rule(row.email) for row in rows}
    taken = {row.email_key for row in rows if wanted[row.id] == row.email_key}
    for row in rows:
        key = wanted[row.id]
        if key == row.email_key or key in taken:
            continue
        taken.discard(row.email_key)
        taken.add(key)
        bind.execute(sa.update(USERS).where(USERS.c.id == row.id).values(email_key=key))


def upgrade() -> None:
    _rekey(_key)


def downgrade() -> None:
    # The old rule is finer than the new one: keys distinct under the new rule stay distinct.
    _rekey(lambda email: email.strip().casefold())
