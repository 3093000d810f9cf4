"""A dry run's result: what the real run would store, refuse and record, from a plan alone.

A dry run reads (the previous manifest, the API, S3 heads) and writes nothing, downloads
nothing. What the real run would refuse before any byte is fetched is refused here too: the
bucket (checked by the run), the debt's policy (chosen while planning), and each medium's URL
against the allowlist (``check_media``: scheme, host name, userinfo). What only a download can
tell (the addresses a host resolves to, redirects, the bytes themselves) is not checked: a
dry run makes no DNS query and no media request.
"""

from __future__ import annotations

from collections.abc import Callable

from archiver.archive.plan import DebtPlan
from archiver.archive.results import DebtResult
from archiver.common.problems import Problem
from archiver.errors import MediaError
from archiver.getbill.records import MediaRef

__all__ = ["MediaCheck", "preview", "with_policy"]

# Raises MediaError (MediaHostNotAllowedError) for a medium the real run would refuse.
MediaCheck = Callable[[MediaRef], None]


def preview(plan: DebtPlan, check_media: MediaCheck | None) -> DebtResult:
    """The ``planned`` result of ``plan``: ``media_stored`` counts the media the real run
    would store; each one it would refuse is a problem instead, as the real run reports it."""
    problems = list(plan.problems)
    would_store = 0
    for fetch in plan.to_fetch:
        try:
            if check_media is not None:
                check_media(fetch.ref)
        except MediaError as exc:
            problems.append(
                Problem.from_exception(
                    exc,
                    followup_id=fetch.ref.followup_id,
                    kind=fetch.ref.kind,
                    source=exc.context.get("url", fetch.ref.source),
                )
            )
            continue
        would_store += 1
    return DebtResult(
        debt_id=plan.debt_id,
        status="planned",
        followups=len(plan.facts.followups),
        media_stored=would_store,
        media_reused=plan.reused,
        problems=[p.to_dict() for p in problems],
    )


def with_policy(result: DebtResult, plan: DebtPlan) -> DebtResult:
    """``result`` saying which policy the debt is archived under, and the change, if any."""
    result.policy = plan.policy.name
    result.policy_kept_from = plan.policy_kept_from
    result.policy_change = plan.policy_change.to_json() if plan.policy_change else None
    return result
