"""Events from other contexts, translated into this context's commands."""

from __future__ import annotations

from contexts.user.events import UserRegistered
from contexts.wishlist.application.handlers import OpenWishlist, OpenWishlistHandler
from infrastructure.events.delivery import Delivery


def when_user_registered_open_wishlist(
    event: UserRegistered, delivery: Delivery, *, open_wishlist: OpenWishlistHandler
) -> None:
    open_wishlist(OpenWishlist(owner_id=event.user_id, owner_name=event.name), delivery=delivery)
