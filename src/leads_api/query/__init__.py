"""Raw query string -> one typed ListQuery, checked against the field registry. Pure: no I/O."""

from leads_api.query.model import (
    Exists,
    IntRanges,
    ListQuery,
    Predicate,
    Search,
    SortKey,
    TextIn,
)
from leads_api.query.parser import (
    parse_changes_query,
    parse_list_query,
    parse_one_lead_query,
    split_query_string,
)

__all__ = [
    "Exists",
    "IntRanges",
    "ListQuery",
    "Predicate",
    "Search",
    "SortKey",
    "TextIn",
    "parse_changes_query",
    "parse_list_query",
    "parse_one_lead_query",
    "split_query_string",
]
