"""Settings of the getbill simulator: dataset shape, OAuth clients, limits and fault knobs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

FOLLOWUP_TYPES = (
    "call",
    "email",
    "sms",
    "whatsapp",
    "voicemail",
    "manual_call",
    "physical",
    "postmail",
)
FOLLOWUP_STATUSES = (
    "on_hold",
    "scheduled",
    "in_progress",
    "sent",
    "delivered",
    "deal_found",
    "no_answer",
    "deal_not_found",
    "bad_behavior",
    "failed",
    "cancelled",
)
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# Orders of ``GET /followups``: debt by debt (each debt's followups oldest first), or the whole
# company by date (call_date, else scheduled_at), oldest first, ties by id.
FOLLOWUP_ORDERS = ("debt", "date")
# Recording sizes of a "small media" world (benchmarks, end-to-end tests at company scale).
SMALL_AUDIO_SIZE_RANGE = (10_000, 50_000)


@dataclass(frozen=True)
class ClientSpec:
    """One OAuth client the simulator knows: its secret, company and allowed scopes."""

    client_id: str
    client_secret: str
    company: str
    scopes: tuple[str, ...]


def default_clients() -> tuple[ClientSpec, ...]:
    """``demo-client`` (company A, both read scopes), a followups-only client, a company-B one."""
    return (
        ClientSpec("demo-client", "demo-secret", "A", ("followups:read", "debts:read")),
        ClientSpec("followups-only-client", "followups-only-secret", "A", ("followups:read",)),
        ClientSpec(
            "other-company-client", "other-company-secret", "B", ("followups:read", "debts:read")
        ),
    )


@dataclass
class SimulatorConfig:
    """Everything the simulator can be told. Defaults mimic the documented API.

    The dataset fields (``seed`` .. ``large_audio_share``) are read once when the
    :class:`Simulator` is built. Every other field is read on each request,
    so tests change them at runtime (``sim.config.error_rate = 0.3``); that is why this config,
    unlike the archiver's, is not frozen.

    Dataset:
      seed                 same seed => identical JSON and media bytes.
      debts                number of debts (the first is "big", the second has no followup).
      other_company_debts  the last N debts belong to company B (403 for company-A clients).
      followups_per_debt   followups of each ordinary debt.
      big_debt_followups   followups of the first debt (130 => two pages at limit=100).
      audio_size_range     byte sizes of most recordings; ``large_audio_*`` for a few big ones.
      media_share          None: media as the type and status imply (a recording for each call
                           or voicemail that took place, a letter for each sent postmail).
                           A share F in [0, 1]: each followup carries a medium with probability
                           F (a recording for a call or voicemail, a PDF for a postmail; its
                           type is drawn among those), and no other followup has one.
                           Deterministic from the seed; None keeps the dataset of older versions.

    Auth and limits:
      clients              OAuth clients (:func:`default_clients`).
      static_tokens        bearer token -> client id, accepted forever (GETBILL_TOKEN mode).
      token_ttl_s          ``expires_in`` of issued tokens, checked against the clock.
      url_ttl_s            lifetime of signed media URLs (``X-Amz-Expires``).
      rate_limit / rate_window_s   sliding window per client (1000 requests per hour).

    Fault knobs (all off by default; "share" knobs are deterministic from the seed and the
    request order):
      error_rate           share of API requests answered 500/502/503/504 (JSON error body).
      media_error_rate     share of media requests answered 500 (S3 XML InternalError).
      delay_s              every API and media answer waits this long first.
      burst_429            the next N API requests answer 429 with ``retry_after`` =
                           ``burst_retry_after_s`` (decremented as they are served).
      truncate_media_first the first K requests of each media file send a full Content-Length
                           but only ``truncate_fraction`` of the body.
      truncate_media_rate  share of media requests truncated that way.
      html_media_first     the first K requests of each media file answer 200 text/html (an
                           error page) instead of the media.
      html_media_rate      share of media requests answered that way.
      unstable_total       list ``pagination.total`` grows by one on each page after the first.
      duplicate_across_pages  each page after the first starts with the last item of the page
                           before (an id seen twice, as when a record is inserted meanwhile).
      insert_during_listing  followups still to insert while a debt's followup listing is
                           read: each time page 1 of ``/followups/debt/{id}`` is served and
                           more pages follow, ``insert_batch`` new followups (fewer if the
                           budget is lower) are inserted at the top of that debt, dated before
                           its oldest one so the oldest-first order holds. Later pages shift:
                           the last items of page 1 reappear on page 2, ``total`` grows, and
                           the new followups are only on page 1 of a later listing. The
                           budget is decremented as followups are inserted, so a small one
                           hits one listing and a relisting converges; a large one hits every
                           listing. Deterministic from the seed.
      insert_batch         followups inserted per listing by ``insert_during_listing``.

    Webhooks (read at each event, see :mod:`.webhooks`):
      webhook_url          where followup events are posted (None: no webhooks).
      webhook_secret       the key of their ``X-GetBill-Signature``.
      webhook_duplicates   every delivery is sent this many extra times.
      webhook_bad_signature_rate  share of deliveries signed with a wrong key.

    Listing order (read on each request):
      followups_order      order of ``GET /followups``: ``"debt"`` (debt by debt, in debt order,
                           each debt's followups oldest first) or ``"date"`` (every followup of
                           the company by call_date, else scheduled_at, oldest first, ties by
                           id; undated ones last). The real API documents no order.
    """

    seed: int = 1
    debts: int = 8
    other_company_debts: int = 2
    followups_per_debt: int = 12
    big_debt_followups: int = 130
    audio_size_range: tuple[int, int] = (100_000, 1_000_000)
    large_audio_size_range: tuple[int, int] = (3_000_000, 6_000_000)
    large_audio_share: float = 0.12
    media_share: float | None = None

    clients: tuple[ClientSpec, ...] = field(default_factory=default_clients)
    static_tokens: dict[str, str] = field(
        default_factory=lambda: {"sim-static-token": "demo-client"}
    )
    token_ttl_s: int = 3600
    url_ttl_s: int = 3600
    rate_limit: int = 1000
    rate_window_s: int = 3600
    signing_secret: str | None = None

    error_rate: float = 0.0
    media_error_rate: float = 0.0
    delay_s: float = 0.0
    burst_429: int = 0
    burst_retry_after_s: int = 1
    truncate_media_first: int = 0
    truncate_media_rate: float = 0.0
    truncate_fraction: float = 0.5
    html_media_first: int = 0
    html_media_rate: float = 0.0
    unstable_total: bool = False
    duplicate_across_pages: bool = False
    insert_during_listing: int = 0
    insert_batch: int = 3
    followups_order: str = "debt"
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_duplicates: int = 0
    webhook_bad_signature_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.media_share is not None and not 0.0 <= self.media_share <= 1.0:
            raise ValueError(f"media_share must be in [0, 1], not {self.media_share}")
        if self.followups_order not in FOLLOWUP_ORDERS:
            raise ValueError(
                f"followups_order must be one of {', '.join(FOLLOWUP_ORDERS)},"
                f" not {self.followups_order!r}"
            )
        lo, hi = self.audio_size_range
        if not 0 < lo <= hi:
            raise ValueError(f"audio_size_range must be 0 < LO <= HI, not {lo}-{hi}")

    def client(self, client_id: str) -> ClientSpec | None:
        """The client with this id, if configured."""
        return next((c for c in self.clients if c.client_id == client_id), None)


class SimClock:
    """Real time plus an offset that tests move forward: ``clock.advance(3601)``.

    Following real time keeps the simulator in step with code that reads ``time.time()``
    itself; the offset lets a test expire URLs and tokens without sleeping.
    """

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` into the future."""
        self.offset += seconds
