"""HTTP endpoint of the wishlist context: a user's wishlist."""

from __future__ import annotations

from typing import Any

from dependency_injector.wiring import Provide, inject
from flask import Blueprint

from contexts.wishlist.application import handlers
from contexts.wishlist.domain.model import WishlistNotFound
from infrastructure.http.openapi import endpoint
from infrastructure.http.problems import map_errors
from infrastructure.http.schemas import ResponseModel
from infrastructure.http.validation import id_from_path

bp = Blueprint("wishlist", __name__)
map_errors(bp, {WishlistNotFound: 404})


class WishlistOut(ResponseModel):
    owner_id: str
    title: str


@bp.get("/wishlists/<owner_id>")
@endpoint(summary="Read a user's wishlist", tag="wishlists", responses={200: WishlistOut}, errors=[404])
@inject
def get_wishlist(owner_id: str, get: handlers.GetWishlistHandler = Provide["wishlist.get_wishlist"]) -> dict[str, Any]:
    user_id = id_from_path(owner_id, lambda raw: WishlistNotFound(f"user {raw} has no wishlist"))
    wishlist = get(handlers.GetWishlist(user_id))
    return {"owner_id": str(wishlist.owner_id), "title": wishlist.title}
