"""The seeded dataset of the simulator: debts and followups as the getbill API describes them.

Everything comes from ``random.Random(f"...{seed}")`` and a fixed epoch (2026-01-05 09:00 UTC),
never from the current time, so the same seed always yields the same records. Signed media URLs
are *not* part of the records: the app signs them each time it serves a followup.
"""

from __future__ import annotations

import itertools
import random
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from archiver.devkit.simulator.config import FOLLOWUP_STATUSES, FOLLOWUP_TYPES, SimulatorConfig

EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ID_ALPHABET = string.ascii_lowercase + string.digits

COMPANIES = {
    "A": {"id": "cmpa7k2m9x4q", "name": "Recouvra Conseil SAS"},
    "B": {"id": "cmpb3n8w1z6r", "name": "Créances & Associés SARL"},
}
FIRSTNAMES = (
    "Amélie",
    "François",
    "Hélène",
    "Jérôme",
    "Chloé",
    "Benoît",
    "Inès",
    "Loïc",
    "Noémie",
    "Gaëlle",
    "Étienne",
    "Zoé",
    "Raphaël",
    "Léa",
    "Maël",
    "Céline",
)
LASTNAMES = (
    "Lefèvre",
    "Dupré",
    "Mercier",
    "Bézier",
    "Gauthier",
    "Rivière",
    "Fontaine",
    "Lemaître",
    "Durand",
    "Pérez",
    "Chevalier",
    "Moreau",
    "Girard",
    "Faure",
)
STREETS = (
    "rue de la Paix",
    "avenue des Champs-Élysées",
    "boulevard Saint-Germain",
    "rue du Faubourg Saint-Honoré",
    "place Bellecour",
    "quai de la Tournelle",
    "rue Sainte-Catherine",
    "allée des Tilleuls",
)
CITIES = (
    ("75002", "Paris"),
    ("69002", "Lyon"),
    ("33000", "Bordeaux"),
    ("13001", "Marseille"),
    ("59000", "Lille"),
    ("44000", "Nantes"),
    ("31000", "Toulouse"),
    ("67000", "Strasbourg"),
)
OBJECTS = (
    "Abonnement fibre — factures impayées",
    "Prestation de nettoyage — solde",
    "Location de matériel",
    "Cotisation annuelle",
    "Travaux de rénovation — acompte",
)
DEBT_STATUSES = (
    "status.default.pending",
    "in_progress",
    "processing",
    "settled",
    "paid",
    "partial",
    "failed",
    "archived",
    "invalid_phone",
    "on_hold",
    "refused",
)

SUMMARIES = {
    "call": (
        "Appel sortant : le débiteur reconnaît la dette et propose un échéancier.",
        "Appel : promesse de paiement sous huit jours.",
        "Appel : le débiteur conteste le montant, demande une copie de la facture.",
    ),
    "voicemail": ("Message vocal déposé : rappel de l'échéance et du lien de paiement.",),
    "manual_call": ("Appel manuel de l'agent : échange courtois, accord trouvé.",),
    "email": ("Courriel de relance envoyé avec le lien de paiement.",),
    "sms": ("SMS de rappel envoyé.",),
    "whatsapp": ("Message WhatsApp envoyé, accusé de lecture reçu.",),
    "physical": ("Visite sur place : débiteur absent, avis de passage déposé.",),
    "postmail": ("Courrier de relance amiable envoyé (lettre simple).",),
}
NOTE_SENTENCES = (
    "Le débiteur indique avoir déjà réglé une partie de la somme par virement.",
    "Il souhaite être rappelé en fin de matinée, après 11 h.",
    "Échange cordial ; aucune agressivité constatée.",
    "Demande d'un échéancier en trois fois acceptée sous réserve de validation du créancier.",
    "Le numéro de téléphone a changé : mise à jour effectuée dans le dossier.",
    "Réclamation sur la qualité de la prestation : transmise au service clients.",
    "Rappel des conséquences d'un défaut de paiement (procédure d'injonction).",
    "La conjointe précise que M. est en déplacement à l'étranger jusqu'à la fin du mois.",
)
DISCONNECTIONS = (
    "completed_successfully",
    "user_hangup",
    "agent_hangup",
    "voicemail_reached",
    "dial_no_answer",
    "call_transfer",
)
# Statuses for which the contact did not (yet) happen: no recording or letter exists.
NOT_DONE = frozenset({"on_hold", "scheduled", "cancelled"})
AUDIO_TYPES = frozenset({"call", "voicemail"})
CALL_TYPES = frozenset({"call", "voicemail", "manual_call"})
PHONE_TYPES = frozenset({"call", "voicemail", "manual_call", "sms", "whatsapp"})
PLAUSIBLE_STATUSES = {
    "call": ("deal_found", "no_answer", "deal_not_found", "bad_behavior", "failed", "scheduled"),
    "voicemail": ("delivered", "sent", "failed"),
    "manual_call": ("deal_found", "deal_not_found", "no_answer", "in_progress"),
    "email": ("sent", "delivered", "failed", "scheduled"),
    "sms": ("sent", "delivered", "failed"),
    "whatsapp": ("sent", "delivered", "on_hold"),
    "physical": ("scheduled", "deal_found", "no_answer", "cancelled"),
    "postmail": ("sent", "delivered", "on_hold"),
}
TYPE_WEIGHTS = (30, 18, 14, 8, 10, 6, 4, 10)  # calls dominate, then email, sms ...
TYPE_CUM_WEIGHTS = tuple(itertools.accumulate(TYPE_WEIGHTS))
# Types that can carry a medium (a recording, a letter), weighted as in TYPE_WEIGHTS.
MEDIA_TYPES = tuple(t for t in FOLLOWUP_TYPES if t in AUDIO_TYPES or t == "postmail")
MEDIA_TYPE_WEIGHTS = tuple(
    w for t, w in zip(FOLLOWUP_TYPES, TYPE_WEIGHTS, strict=True) if t in MEDIA_TYPES
)
# The plausible statuses of a contact that took place (a medium exists), per type.
DONE_STATUSES = {
    t: tuple(s for s in statuses if s not in NOT_DONE) for t, statuses in PLAUSIBLE_STATUSES.items()
}


def iso(dt: datetime | None) -> str | None:
    """``2026-01-05T09:00:00+00:00`` (the API's format), or None."""
    return None if dt is None else dt.isoformat()


@dataclass(frozen=True)
class MediaSpec:
    """What a followup's media file is; its bytes are generated on demand."""

    kind: str  # "audio" | "pdf"
    fmt: str  # "wav" | "mp3" | "pdf"
    size: int | None  # audio: exact size; pdf: known once rendered


@dataclass
class Dataset:
    """Records in API order (oldest first), plus what the app needs to serve them."""

    debts: dict[str, dict[str, Any]] = field(default_factory=dict)
    company_of: dict[str, str] = field(default_factory=dict)
    followups: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_debt: dict[str, list[str]] = field(default_factory=dict)
    media: dict[tuple[str, str], MediaSpec] = field(default_factory=dict)
    used_ids: set[str] = field(default_factory=set)
    # Bumped by every change to the followups (added, removed, reordered or edited): cached
    # listings built at another revision are stale.
    revision: int = 0

    def touch(self) -> None:
        """Record that followups changed (call it after editing records in place)."""
        self.revision += 1

    def new_id(self, rng: random.Random) -> str:
        """An unused opaque id like ``xyz789ghi012``."""
        draw = rng.random
        alphabet, size = ID_ALPHABET, len(ID_ALPHABET)
        while True:
            # The draws of ``rng.choices(ID_ALPHABET, k=12)``, without its overhead.
            value = "".join([alphabet[int(draw() * size)] for _ in range(12)])
            if value not in self.used_ids and not value[0].isdigit():
                self.used_ids.add(value)
                return value


def _iban(rng: random.Random) -> str:
    """A French IBAN whose check digits are right (mod 97), grouped by four."""
    bban = "".join(rng.choices(string.digits, k=23))
    numeric = int(bban + "152700")  # "FR" -> 15 27, then "00"
    check = 98 - numeric % 97
    raw = f"FR{check:02d}{bban}"
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def _amount_text(amount: float) -> str:
    whole, cents = f"{amount:.2f}".split(".")
    grouped = f"{int(whole):,}".replace(",", "\u202f")
    return f"{grouped},{cents} €"


def make_debt(ds: Dataset, rng: random.Random, index: int, company: str) -> dict[str, Any]:
    """One debt record with every documented field (fictitious person)."""
    debt_id = ds.new_id(rng)
    first, last = rng.choice(FIRSTNAMES), rng.choice(LASTNAMES)
    civility = rng.choice(("M.", "Mme"))
    postal, city = rng.choice(CITIES)
    number = str(rng.randint(1, 180))
    street = rng.choice(STREETS)
    phone = "+336" + "".join(rng.choices(string.digits, k=8))
    amount = round(rng.uniform(80, 9500), 2)
    invoice = EPOCH - timedelta(days=200 + rng.randint(0, 300))
    imported = EPOCH - timedelta(days=150 + index)
    plan = rng.random() < 0.25
    slug = f"{first}.{last}".lower().translate(str.maketrans("éèëêïîôöüûçàâ", "eeeeiioouucaa"))
    return {
        "id": debt_id,
        "civility": civility,
        "firstname": first,
        "lastname": last,
        "phone": phone,
        "email": f"{slug}@exemple.fr",
        "birthdate": f"{rng.randint(1950, 2002)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "amount": amount,
        "amount_text": _amount_text(amount),
        "currency": "EUR",
        "object": rng.choice(OBJECTS),
        "internal_id": f"INT-{10000 + index}",
        "invoice_reference": f"FAC-2025-{rng.randint(1000, 9999)}",
        "debtor_reference": f"CLI-{rng.randint(100000, 999999)}",
        "invoice_date": invoice.date().isoformat(),
        "due_date": (invoice + timedelta(days=30)).date().isoformat(),
        "address": f"{number} {street}, {postal} {city}, France",
        "street_address": street,
        "street_number": number,
        "postal_code": postal,
        "city": city,
        "country": "FR",
        "status": rng.choice(DEBT_STATUSES),
        "timeline_id": ds.new_id(rng),
        "nb_reminders": 0,
        "nb_answered": 0,
        "summary": f"Dossier {civility} {last} : {rng.choice(OBJECTS).lower()}.",
        "iban": _iban(rng),
        "followups_count": 0,
        "company": dict(COMPANIES[company]),
        "debtor_company": None if rng.random() < 0.7 else {"name": f"{last} SARL"},
        "payment_link": f"https://pay.example.invalid/p/{ds.new_id(rng)}",
        "import_date": iso(imported),
        "last_timeline_restart": iso(imported + timedelta(days=30)),
        "payment_plan_active": plan,
        "plan_start_date": (EPOCH - timedelta(days=20)).date().isoformat() if plan else None,
        "contacts": [
            {
                "name": f"{rng.choice(FIRSTNAMES)} {last}",
                "phone": "+336" + "".join(rng.choices(string.digits, k=8)),
                "email": None,
                "role": rng.choice(("conjoint", "comptable", "gérant")),
            }
        ],
    }


def _notes(rng: random.Random, long: bool) -> str:
    if not long:
        return " ".join(rng.sample(NOTE_SENTENCES, k=rng.randint(1, 3)))
    # Several KB of agent notes, as a long call transcript summary would be.
    parts = [
        f"Compte rendu détaillé (partie {i + 1}) : "
        + " ".join(rng.sample(NOTE_SENTENCES, k=len(NOTE_SENTENCES)))
        for i in range(rng.randint(6, 10))
    ]
    return "\n\n".join(parts)


def make_followup(
    ds: Dataset,
    rng: random.Random,
    config: SimulatorConfig,
    debt: dict[str, Any],
    *,
    ftype: str,
    status: str,
    when: datetime,
    audio_size: int | None = None,
    audio_format: str | None = None,
    media: bool | None = None,
) -> dict[str, Any]:
    """One followup record (without signed URLs); registers its media spec in ``ds``.

    ``media`` None: a medium as type and status imply (a recording for a call or voicemail that
    took place or has ``audio_size``, a letter for a sent postmail). True: a medium whatever the
    status (the type must be able to carry one). False: none.
    """
    if media and ftype not in MEDIA_TYPES:
        raise ValueError(f"a {ftype!r} followup carries no medium")
    if media is False and audio_size is not None:
        raise ValueError("audio_size given for a followup without a medium")
    fid = ds.new_id(rng)
    done = status not in NOT_DONE
    is_call = ftype in CALL_TYPES
    record: dict[str, Any] = {
        "id": fid,
        "debt_id": debt["id"],
        "status": status,
        "type": ftype,
        "call_date": iso(when) if is_call and done else None,
        "scheduled_at": iso(when - timedelta(minutes=rng.randint(5, 600))),
        "summary": rng.choice(SUMMARIES[ftype]) if done else None,
        "notes": _notes(rng, long=rng.random() < 0.1) if done else None,
        "call_id": f"call_{rng.randint(100000, 999999)}" if is_call and done else None,
        "audio_url": None,
        "pdf_url": None,
        "duration_ms": None,
        "disconnection_reason": rng.choice(DISCONNECTIONS) if is_call and done else None,
        "direction": (rng.choice(("outbound",) * 4 + ("inbound",)) if is_call else None),
        "phone_number_used": debt["phone"] if ftype in PHONE_TYPES else None,
        "is_retry": rng.random() < 0.2,
        "processed_at": iso(when + timedelta(minutes=rng.randint(1, 30))) if done else None,
        "triggered_payment": status == "deal_found" and rng.random() < 0.5,
        "email_opened": None,
        "email_open_count": None,
        "email_first_opened_at": None,
        "email_clicked": None,
        "email_click_count": None,
    }
    if is_call and done:
        record["duration_ms"] = rng.randint(8_000, 420_000)
    if ftype == "email":
        opens = rng.choice((0, 0, 1, 2, 3, 7)) if done else 0
        clicks = min(opens, rng.choice((0, 0, 1, 2)))
        record.update(
            email_opened=opens > 0,
            email_open_count=opens,
            email_first_opened_at=iso(when + timedelta(hours=rng.randint(1, 48)))
            if opens
            else None,
            email_clicked=clicks > 0,
            email_click_count=clicks,
        )
    wants_media = (done or audio_size is not None) if media is None else media
    if ftype in AUDIO_TYPES and wants_media:
        if audio_size is None:
            lo, hi = config.audio_size_range
            if rng.random() < config.large_audio_share:
                lo, hi = config.large_audio_size_range
            audio_size = rng.randint(lo, hi)
        fmt = audio_format or rng.choice(("mp3", "mp3", "wav"))
        ds.media[(fid, "audio")] = MediaSpec("audio", fmt, audio_size)
        from archiver.devkit.simulator.media import audio_duration_ms

        record["duration_ms"] = audio_duration_ms(fmt, audio_size)
    if ftype == "postmail" and (done if media is None else media):
        ds.media[(fid, "pdf")] = MediaSpec("pdf", "pdf", None)
    ds.followups[fid] = record
    ds.touch()
    ds.by_debt.setdefault(debt["id"], []).append(fid)
    debt["followups_count"] = len(ds.by_debt[debt["id"]])
    if is_call and done:
        debt["nb_reminders"] += 1
        if status in ("deal_found", "deal_not_found", "bad_behavior"):
            debt["nb_answered"] += 1
    return record


def build_dataset(config: SimulatorConfig) -> Dataset:
    """The whole seeded dataset: debt 0 is big, debt 1 has none, the last ones are company B.

    Company A's first followups cycle through every type and every status, so the dataset
    covers each documented value whatever the sizes configured. With ``config.media_share``,
    whether a followup carries a medium is drawn from a random source of its own first; such a
    followup (past the cycle) gets a type that can carry one and a status of a contact made.
    """
    rng = random.Random(f"getbill-sim:{config.seed}")
    share = config.media_share
    media_rng = random.Random(f"getbill-sim-media:{config.seed}") if share is not None else None
    ds = Dataset()
    n_debts = max(config.debts, 0)
    n_other = min(max(config.other_company_debts, 0), n_debts)
    counter = 0  # followups created so far in company A
    for index in range(n_debts):
        company = "B" if index >= n_debts - n_other else "A"
        debt = make_debt(ds, rng, index, company)
        ds.debts[debt["id"]] = debt
        ds.company_of[debt["id"]] = company
        ds.by_debt[debt["id"]] = []
        if index == 0 and company == "A":
            count = config.big_debt_followups
        elif index == 1 and company == "A":
            count = 0
        else:
            count = config.followups_per_debt
        start = EPOCH - timedelta(days=90)
        step = timedelta(days=90) / max(count, 1)
        for k in range(count):
            media: bool | None = None
            if media_rng is not None and share is not None:
                media = media_rng.random() < share
            if company == "A" and counter < 2 * len(FOLLOWUP_STATUSES):
                ftype = FOLLOWUP_TYPES[counter % len(FOLLOWUP_TYPES)]
                status = FOLLOWUP_STATUSES[counter % len(FOLLOWUP_STATUSES)]
                if media:
                    media = ftype in MEDIA_TYPES and status not in NOT_DONE
            elif media:
                ftype = rng.choices(MEDIA_TYPES, weights=MEDIA_TYPE_WEIGHTS)[0]
                status = rng.choice(DONE_STATUSES[ftype])
            else:
                ftype = rng.choices(FOLLOWUP_TYPES, cum_weights=TYPE_CUM_WEIGHTS)[0]
                status = rng.choice(PLAUSIBLE_STATUSES[ftype])
            if company == "A":
                counter += 1
            when = start + step * k + timedelta(minutes=rng.randint(0, 120))
            make_followup(ds, rng, config, debt, ftype=ftype, status=status, when=when, media=media)
    return ds
