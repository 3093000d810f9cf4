"""getbill's debt and followup statuses in plain English, for readers who do not know getbill.

getbill's status names are terse (``deal_not_found``, ``status.default.pending``). The
dossier shows each status exactly as the API gave it, with the meaning below beside it. A
status not listed here (companies may add their own) is shown as received, without a meaning.
"""

from __future__ import annotations

DEBT_STATUSES: dict[str, str] = {
    "status.default.pending": "waiting: imported, collection not started yet",
    "in_progress": "collection under way",
    "processing": "getbill is carrying out an action on the debt",
    "settled": "closed by an agreement with the debtor",
    "paid": "paid in full",
    "partial": "partly paid; a balance is still owed",
    "failed": "collection did not succeed",
    "archived": "closed and archived in getbill; no further action",
    "invalid_phone": "the debtor's phone number does not work, so calls cannot be made",
    "on_hold": "paused: no followup is sent while on hold",
    "refused": "the debtor refused to pay",
}

FOLLOWUP_STATUSES: dict[str, str] = {
    "on_hold": "paused, not carried out for now",
    "scheduled": "planned, not yet carried out",
    "in_progress": "being carried out (for example a call under way)",
    "sent": "sent (message or letter); delivery not confirmed",
    "delivered": "delivered to the debtor",
    "deal_found": "the debtor agreed to pay or to a payment plan",
    "no_answer": "the debtor did not answer",
    "deal_not_found": "the debtor was reached, but no agreement was made",
    "bad_behavior": "the debtor was reached and was abusive or hostile",
    "failed": "could not be carried out (technical failure, wrong number, bounce)",
    "cancelled": "cancelled before it was carried out",
}

UNKNOWN = "not a status getbill documents; shown as received"


def debt_status_meaning(status: str) -> str | None:
    """The plain-English meaning of a debt status; None when getbill does not document it."""
    return DEBT_STATUSES.get(status)


def followup_status_meaning(status: str) -> str | None:
    """The plain-English meaning of a followup status; None when getbill does not document it."""
    return FOLLOWUP_STATUSES.get(status)


def with_meaning(status: str, meaning: str | None) -> str:
    """``in_progress — collection under way``; the status alone when it has no meaning."""
    return f"{status} — {meaning}" if meaning else status


__all__ = [
    "DEBT_STATUSES",
    "FOLLOWUP_STATUSES",
    "UNKNOWN",
    "debt_status_meaning",
    "followup_status_meaning",
    "with_meaning",
]
