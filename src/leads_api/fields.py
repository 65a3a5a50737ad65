"""The lead field registry: every field's API name, column, kind, filters, sorting and writability.

The query parser, the SQL builder, the renderer, the write validators and the error messages
all read this table; adding a filterable field is one line here plus one migration.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    """How a field is stored and how its filter values are read."""

    ID = "id"  # text primary key, `lead_` + base62
    TEXT = "text"  # free text, exact case-sensitive equality
    CHOICE = "choice"  # text restricted to `choices`
    MONEY = "money"  # stored as integer cents, output as a JSON number
    TIME = "time"  # stored as integer milliseconds since the epoch, output as ISO 8601 UTC
    CONSENT = "consent"  # true / false / null


# Filter operators as they appear in the query string: `field=v` is "eq", `field[op]=v` the rest.
EQ = "eq"
COMPARISONS = ("gte", "gt", "lte", "lt")
EXISTS = "exists"
BRACKET_OPERATORS = (*COMPARISONS, EXISTS)

STATUSES = ("open", "qualified", "won", "lost")
SOURCES = ("inbound", "gtm", "api", "manual", "wordpress", "import")

DEFAULT_MAX_LENGTH = 2_000


@dataclass(frozen=True)
class Field:
    name: str  # API name, also the JSON key
    column: str  # column in the `leads` table
    kind: Kind
    operators: frozenset[str] = frozenset()  # filter operators allowed; empty = not filterable
    sortable: bool = False
    writable: bool = False  # accepted in a POST /api/leads body
    max_length: int = DEFAULT_MAX_LENGTH
    choices: tuple[str, ...] = ()
    nullable: bool = True

    @property
    def filterable(self) -> bool:
        return bool(self.operators)


_EQ_EXISTS = frozenset({EQ, EXISTS})
_ALL_OPS = frozenset({EQ, *COMPARISONS, EXISTS})


def _text(name: str, column: str | None = None, *, ops: frozenset[str] = frozenset(),
          writable: bool = True, max_length: int = DEFAULT_MAX_LENGTH) -> Field:
    return Field(name, column or name, Kind.TEXT, ops, writable=writable, max_length=max_length)


def _click_id(name: str) -> Field:
    return _text(name, ops=_EQ_EXISTS)


def _time(name: str, column: str, *, nullable: bool = False) -> Field:
    return Field(name, column, Kind.TIME, _ALL_OPS, sortable=True, nullable=nullable)


def _consent(name: str) -> Field:
    return Field(name, name, Kind.CONSENT, writable=True)


# The lead object, in output order (CONTRACT.md section 3).
LEAD_FIELDS: tuple[Field, ...] = (
    Field("id", "id", Kind.ID, nullable=False),
    Field("name", "name", Kind.TEXT, sortable=True, writable=True),
    Field("email", "email", Kind.TEXT, sortable=True, writable=True),
    _text("phone"),
    Field("status", "status", Kind.CHOICE, frozenset({EQ}), sortable=True, choices=STATUSES,
          nullable=False),
    Field("value", "value_cents", Kind.MONEY, _ALL_OPS, sortable=True),
    _text("note", max_length=10_000),
    _text("custom", max_length=64 * 1024),
    _text("lossReason", "loss_reason", writable=False),
    _text("conversionName", "conversion_name"),
    Field("source", "source", Kind.CHOICE, frozenset({EQ}), choices=SOURCES, nullable=False),
    _text("website", ops=_EQ_EXISTS),
    _text("path"),
    _text("sessionId", "session_id", ops=frozenset({EQ}), max_length=255),
    _click_id("gclid"),
    _click_id("ga4cid"),
    _click_id("ga4sid"),
    _click_id("fbc"),
    _click_id("fbp"),
    _click_id("msclkid"),
    _click_id("ttclid"),
    _click_id("twclid"),
    _click_id("rdt_cid"),
    _click_id("sccid"),
    _click_id("li_fat_id"),
    _click_id("dclid"),
    _click_id("wbraid"),
    _click_id("gbraid"),
    _click_id("epik"),
    _text("utm_source", ops=_EQ_EXISTS),
    _text("utm_medium", ops=_EQ_EXISTS),
    _text("utm_campaign", ops=_EQ_EXISTS),
    _consent("ad_storage"),
    _consent("ad_user_data"),
    _consent("analytics_storage"),
    _consent("ad_personalization"),
    _text("googleAdsCampaignId", "google_ads_campaign_id", writable=False),
    _text("googleAdsCampaignName", "google_ads_campaign_name", writable=False),
    _text("googleAdsAdGroupId", "google_ads_ad_group_id", writable=False),
    _text("googleAdsAdGroupName", "google_ads_ad_group_name", writable=False),
    _text("googleAdsAdId", "google_ads_ad_id", writable=False),
    _text("labelId", "label_id", ops=_EQ_EXISTS),
    _text("selectedConversionEventId", "selected_conversion_event_id", writable=False),
    _time("createdAt", "created_at"),
    _time("updatedAt", "updated_at"),
    _time("qualifiedAt", "qualified_at", nullable=True),
    _time("expiresAt", "expires_at"),
)

FIELDS_BY_NAME: dict[str, Field] = {f.name: f for f in LEAD_FIELDS}
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in LEAD_FIELDS)
ID_FIELD = FIELDS_BY_NAME["id"]

FILTERABLE: dict[str, Field] = {f.name: f for f in LEAD_FIELDS if f.filterable}
SORTABLE: dict[str, Field] = {f.name: f for f in LEAD_FIELDS if f.sortable}
WRITABLE: dict[str, Field] = {f.name: f for f in LEAD_FIELDS if f.writable}

# The ad platforms' click IDs: presence filters on these are answered from a bitmask rollup,
# bit i for the i-th name. New names go at the end: existing masks then stay valid (a lead
# stored before a click ID existed has its bit clear, as it should).
CLICK_ID_NAMES: tuple[str, ...] = (
    "gclid", "ga4cid", "ga4sid", "fbc", "fbp", "msclkid", "ttclid", "twclid", "rdt_cid",
    "sccid", "li_fat_id", "dclid", "wbraid", "gbraid", "epik",
)

# Text fields with few distinct values per organization: equality and presence filters on
# these (with status and source) are answered from a rollup per field.
CATEGORY_NAMES: tuple[str, ...] = ("utm_source", "utm_medium", "utm_campaign", "labelId", "website")

# Legacy spellings accepted in `sort` (CONTRACT.md section 4, "Legacy parameters").
LEGACY_SORT_NAMES: dict[str, str] = {
    "created_at": "createdAt",
    "updated_at": "updatedAt",
    "qualified_at": "qualifiedAt",
}

# Search and name/email ordering run on these derived columns, computed in Python on write
# (str.casefold and the phone's ASCII digits) so both databases give the same answers.
FOLDED_COLUMNS: dict[str, str] = {"name": "name_fold", "email": "email_fold", "phone": "phone_fold"}
PHONE_DIGITS_COLUMN = "phone_digits"
# All four joined by newlines: one column for the search index to prefilter on; the exact
# per-column match above still decides (a term may not span two of them).
SEARCH_TEXT_COLUMN = "search_text"


def sort_column(field: Field) -> str:
    """The column a field orders by: its case-folded copy for name/email, else itself."""
    return FOLDED_COLUMNS.get(field.name, field.column) if field.kind is Kind.TEXT else field.column


def describe_operators(field: Field) -> str:
    """Human list of the filter forms a field accepts, for error messages."""
    forms = []
    if EQ in field.operators:
        forms.append(f"{field.name}=")
    forms.extend(f"{field.name}[{op}]" for op in BRACKET_OPERATORS if op in field.operators)
    return ", ".join(forms)
