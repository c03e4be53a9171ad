"""Person identifiers: national ID, residence ID, border number, passport.

The check digit belongs to an *identifier profile* (configurable), not to the code:
an institution whose numbers use another scheme changes the profile, not this module.
An identifier that fails its check is kept but marked invalid; the resolver never uses an
invalid identifier as a key on its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

NUMERIC_KINDS = ("national_id", "residence_id", "border_number")
ALL_KINDS = (*NUMERIC_KINDS, "passport_number")

_NON_ALNUM = re.compile(r"[^0-9A-Za-z]")


def luhn_check_digit(payload: str) -> str:
    """The Luhn digit that makes ``payload + digit`` valid."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = ord(ch) - 48
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    """True when ``number`` (digits only) passes the Luhn check."""
    if not number.isdigit() or len(number) < 2:
        return False
    return luhn_check_digit(number[:-1]) == number[-1]


@dataclass(frozen=True)
class IdentifierProfile:
    """How the institution's numeric identifiers are formed.

    ``prefixes`` maps each numeric kind to the first digits it may start with;
    ``check`` is ``"luhn"`` or ``"none"``.
    """

    length: int = 10
    check: str = "luhn"
    prefixes: Mapping[str, str] = field(
        default_factory=lambda: {"national_id": "1", "residence_id": "2", "border_number": "34"}
    )

    def is_valid(self, kind: str, value: str) -> bool:
        """Whether ``value`` (cleaned by :func:`clean_identifier`) is a well-formed ``kind``."""
        if kind == "passport_number":
            return 5 <= len(value) <= 20
        if len(value) != self.length or not value.isdigit():
            return False
        if value[0] not in self.prefixes.get(kind, "0123456789"):
            return False
        return self.check != "luhn" or luhn_valid(value)

    def make(self, kind: str, body: str) -> str:
        """Complete ``body`` (length-1 digits, prefix included) into a valid identifier."""
        if self.check == "luhn":
            return body + luhn_check_digit(body)
        return body + "0"


DEFAULT_PROFILE = IdentifierProfile()


def clean_identifier(kind: str, value: str | None) -> str | None:
    """Strip separators and case; ``None`` for an empty cell.

    Numeric identifiers keep only their digits when the cell holds digits with separators
    (``"2398 1457 10"``); anything else is upper-cased alphanumerics so a malformed value is
    still kept as evidence.
    """
    if value is None:
        return None
    text = _NON_ALNUM.sub("", str(value)).upper()
    return text or None
