"""Amounts as money: ``4,281.10 EUR``, the same on every machine (never the ``locale`` module).

getbill gives an amount as a JSON number or as a decimal string, with an ISO 4217 currency
code beside it. The dossier shows it with "," between thousands, "." before the minor units,
as many minor digits as the currency has (EUR 2, JPY 0, KWD 3) and the code after the amount.
An amount that is not a plain decimal number is evidence too: it is shown exactly as
received, marked, never guessed at.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

# ISO 4217 currencies whose minor unit is not 2 digits; every other code gets 2.
_MINOR_UNITS = {
    **dict.fromkeys(
        (
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}
# A decimal string as the API documents it: "4281.10", "-12", "0.5". Nothing locale-shaped
# ("4 281,10", "4,281.10") is read: which separator is which cannot be known for sure.
_DECIMAL = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")
_CODE = re.compile(r"[A-Z]{3}")
UNREADABLE_MARK = "(as received; not a readable amount)"


def minor_units(currency: str | None) -> int:
    """Digits after the decimal point for ``currency`` (ISO 4217; 2 when unknown or None)."""
    return _MINOR_UNITS.get((currency or "").upper(), 2)


def parse_amount(value: Any) -> Decimal | None:
    """``value`` (a JSON number or decimal string) as an exact Decimal; None if it is not one.

    A float is read through its shortest repr, so 4281.1 is 4281.1, not 4281.09999...
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        text = repr(value)
    elif isinstance(value, str):
        text = value.strip()
        if not _DECIMAL.fullmatch(text):
            return None
    else:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def fmt_money(value: Any, currency: Any = None) -> str:
    """``4281.1, "EUR"`` -> ``4,281.10 EUR``; ``1500, "JPY"`` -> ``1,500 JPY``.

    Digits beyond the currency's minor units are kept, not rounded away (``0.125 EUR`` stays
    ``0.125 EUR``): the dossier shows what was recorded. Without a currency the amount is
    followed by ``(currency not stated)``; a currency that is not a three-letter code is
    shown as received. An unreadable amount is shown as received, with
    :data:`UNREADABLE_MARK`.
    """
    code = currency.strip() if isinstance(currency, str) else ""
    amount = parse_amount(value)
    if amount is None:
        shown = value if isinstance(value, str) else repr(value)
        return f"{shown} {code} {UNREADABLE_MARK}".replace("  ", " ")
    digits = minor_units(code if _CODE.fullmatch(code.upper()) else None)
    # Trailing zeros carry nothing: "4281.1000" is shown as 4,281.10.
    exponent = amount.normalize().as_tuple().exponent
    places = max(digits, -exponent if isinstance(exponent, int) else 0)
    text = f"{amount:,.{places}f}"
    if text.startswith("-") and amount == 0:
        text = text[1:]  # "-0.00" says nothing a reader can use
    if not code:
        return f"{text} (currency not stated)"
    return f"{text} {code.upper() if _CODE.fullmatch(code.upper()) else code}"


__all__ = ["UNREADABLE_MARK", "fmt_money", "minor_units", "parse_amount"]
