"""Page cursors: the listing position (created_at, id) of a page's last item, opaque to users."""

from __future__ import annotations

import base64
import binascii

import orjson

from ._validation import MAX_CREATED_AT, MAX_ID_LENGTH, is_storable_key
from .errors import InvalidCheckpointError

# The first element of every cursor; a later format bumps it, and cursors a version does not
# know are refused instead of misread.
_VERSION = 1
_MAX_CURSOR_LENGTH = 512


#: The listing orders a cursor can belong to.
ORDERS = ("desc", "asc")


def check_order(order: object) -> str:
    """Validate a listing ``order`` ("desc" or "asc") or raise InvalidCheckpointError."""
    if order not in ORDERS:
        raise InvalidCheckpointError(f"order must be 'desc' or 'asc', not {order!r}")
    return str(order)


def encode_cursor(created_at: int, checkpoint_id: str, order: str = "desc") -> str:
    """The cursor of the page that follows the row at ``(created_at, checkpoint_id)``.

    A newest-first cursor has the three elements every version wrote; an oldest-first one
    adds ``"asc"``, so a cursor cannot be taken to the other order by mistake.
    """
    value: list[object] = [_VERSION, created_at, checkpoint_id]
    if order == "asc":
        value.append("asc")
    raw = orjson.dumps(value)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: object, order: str = "desc") -> tuple[int, str]:
    """Return the ``(created_at, id)`` a cursor of the listing in ``order`` holds.

    Raises:
        InvalidCheckpointError: ``cursor`` was not made by :func:`encode_cursor`, or was made
            for the other order.
    """
    if type(cursor) is not str or not cursor or len(cursor) > _MAX_CURSOR_LENGTH:
        raise _malformed(cursor)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise _malformed(cursor) from None
    if type(value) is list and len(value) == 4 and value[3] == "asc":
        value = value[:3]
        made_for = "asc"
    else:
        made_for = "desc"
    if (
        type(value) is not list
        or len(value) != 3
        or type(value[0]) is not int
        or value[0] != _VERSION
        or type(value[1]) is not int
        or not 0 <= value[1] <= MAX_CREATED_AT
        or not is_storable_key(value[2], MAX_ID_LENGTH)
        or not value[2]
    ):
        raise _malformed(cursor)
    if made_for != order:
        raise InvalidCheckpointError(
            f"this cursor belongs to a listing in order={made_for!r}, not order={order!r}; "
            "keep the order of the page that returned it, or start again with cursor=None"
        )
    return value[1], value[2]


def _malformed(cursor: object) -> InvalidCheckpointError:
    shown = repr(cursor) if len(repr(cursor)) <= 80 else repr(cursor)[:77] + "..."
    return InvalidCheckpointError(
        f"cursor {shown} is not a cursor that page_checkpoints returned; pass the "
        "next_cursor of the previous page, or None for the first page"
    )
