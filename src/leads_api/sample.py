"""Realistic sample leads, deterministic for a seed: the demo's data and the benchmark's.

Distributions follow what a marketing team sees: half the leads open, Google Tag Manager
forms the main source, click IDs each present with their own probability, names and email
domains drawn from word lists so that searches such as `smith` or `gmail` hit many leads.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from leads_api.fields import SOURCES, STATUSES
from leads_api.lead import LEAD_ID_LENGTH, LEAD_ID_PREFIX

DAY_MS = 86_400_000

FIRST_NAMES = (
    "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Lisa Matthew Nancy "
    "Anthony Betty Mark Sandra Paul Ashley Steven Emily Andrew Donna Kevin Michelle Brian "
    "Carol George Amanda Émile Zoë Jürgen Søren Ångström Renée José Chloé Łukasz Ahmet Mia "
    "Noah Olivia Liam Sophie Lukas Anna Finn Lena Jan Eva Sem Tess Daan Julia"
).split()
LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
    "Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson "
    "White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott "
    "Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell "
    "Carter Roberts de Vries van Dijk Bakker Janssen Visser Müller Schmidt Schneider "
    "Fischer Weber Straße Dubois Lefèvre Østergaard Kowalski"
).split()
EMAIL_DOMAINS = (
    ["gmail.com"] * 8 + ["outlook.com"] * 3 + ["yahoo.com"] * 2
    + ["hotmail.com", "icloud.com", "proton.me", "acme.io", "example.com", "company.nl"]
)
UTM_SOURCES = ("google", "facebook", "instagram", "bing", "linkedin", "tiktok", "newsletter",
               "twitter", "reddit", "partner")
UTM_MEDIUMS = ("cpc", "paid_social", "email", "organic", "referral", "display")
WEBSITES = ("https://example.com", "https://shop.example.com", "https://acme.io",
            "https://www.company.nl")
PATHS = ("/", "/pricing", "/contact", "/demo", "/product", "/blog/guide", "/signup")
LOSS_REASONS = ("Too expensive", "Chose a competitor", "No budget", "No response", "Not a fit")
CONVERSIONS = ("Purchase", "Lead", "Demo booked", "Sign-up")

STATUS_WEIGHTS = dict(zip(STATUSES, (50, 20, 15, 15), strict=True))
SOURCE_WEIGHTS = dict(zip(SOURCES, (15, 55, 10, 5, 10, 5), strict=True))
CLICK_ID_ODDS = {
    "gclid": 0.40, "ga4cid": 0.60, "ga4sid": 0.60, "fbc": 0.25, "fbp": 0.25, "msclkid": 0.08,
    "ttclid": 0.05, "twclid": 0.02, "rdt_cid": 0.02, "sccid": 0.02, "li_fat_id": 0.02,
}
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class LeadSampler:
    """Draws lead rows (keyed by column name) from one seeded random stream."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.campaigns = [f"campaign_{i:03d}" for i in range(200)]
        self.labels = [f"label_{i:02d}" for i in range(20)]

    def _token(self, n: int) -> str:
        return "".join(self.rng.choices(_ALNUM, k=n))

    def _weighted(self, weights: dict[str, int]) -> str:
        return self.rng.choices(list(weights), weights=list(weights.values()))[0]

    def lead(self, *, now_ms: int, span_days: int, attribution_days: int = 90) -> dict[str, Any]:
        rng = self.rng
        created = now_ms - rng.randrange(span_days * DAY_MS)
        status = self._weighted(STATUS_WEIGHTS)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        handle = f"{first}.{last}".lower().replace(" ", "")
        updated = min(now_ms, created + rng.randrange(30 * DAY_MS)) if status != "open" else created
        qualified = None
        if status in ("qualified", "won") or (status == "lost" and rng.random() < 0.5):
            qualified = created + (updated - created) // 2
        value_cents = None
        if status != "open" or rng.random() < 0.1:
            value_cents = rng.randrange(5_000, 5_000_000)
            if rng.random() < 0.7:
                value_cents -= value_cents % 100
        row: dict[str, Any] = {
            "id": LEAD_ID_PREFIX + self._token(LEAD_ID_LENGTH),
            "name": f"{first} {last}" if rng.random() < 0.95 else None,
            "email": f"{handle}{rng.randrange(100)}@{rng.choice(EMAIL_DOMAINS)}",
            "phone": f"+31 6 {rng.randrange(10_000_000, 99_999_999)}"
            if rng.random() < 0.7 else None,
            "status": status,
            "value_cents": value_cents,
            "note": "Asked for a callback" if rng.random() < 0.1 else None,
            "custom": '{"company":"Acme Inc"}' if rng.random() < 0.1 else None,
            "loss_reason": rng.choice(LOSS_REASONS) if status == "lost" else None,
            "conversion_name": rng.choice(CONVERSIONS) if status == "won" else None,
            "source": self._weighted(SOURCE_WEIGHTS),
            "website": rng.choice(WEBSITES),
            "path": rng.choice(PATHS),
            "label_id": rng.choice(self.labels) if rng.random() < 0.5 else None,
            "created_at": created,
            "updated_at": updated,
            "qualified_at": qualified,
            "expires_at": created + attribution_days * DAY_MS,
        }
        for click_id, odds in CLICK_ID_ODDS.items():
            row[click_id] = self._token(24) if rng.random() < odds else None
        if rng.random() < 0.8:
            row["utm_source"] = rng.choice(UTM_SOURCES)
            row["utm_medium"] = rng.choice(UTM_MEDIUMS)
            row["utm_campaign"] = rng.choice(self.campaigns)
        for consent in ("ad_storage", "ad_user_data", "analytics_storage", "ad_personalization"):
            row[consent] = rng.choice((True, True, False, None))
        return row

    def leads(
        self, count: int, *, now_ms: int, span_days: int = 365, attribution_days: int = 90
    ) -> Iterator[dict[str, Any]]:
        for _ in range(count):
            yield self.lead(now_ms=now_ms, span_days=span_days, attribution_days=attribution_days)
