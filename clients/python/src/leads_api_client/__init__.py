"""A Python client for leads-api (and the Octanist Leads API it speaks).

>>> from leads_api_client import LeadsClient
>>> with LeadsClient("http://127.0.0.1:8000", "lak_...") as leads:  # doctest: +SKIP
...     created = leads.create_lead(name="Ada Lovelace", email="ada@example.com")
...     leads.update_leads(id=created.id, status="won", value=5000)
...     for lead, token in leads.iter_changes(since=None):
...         print(lead["id"], lead["status"])
"""

from leads_api_client.client import LeadsClient, __version__
from leads_api_client.errors import (
    BadRequestError,
    ClientError,
    ConflictError,
    ForbiddenError,
    InternalServerError,
    InvalidDateError,
    InvalidFilterError,
    LeadsApiError,
    LeadsConnectionError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    ServerError,
    ServiceUnavailableError,
    UnauthorizedError,
    UnexpectedResponseError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from leads_api_client.results import (
    Change,
    ChangesPage,
    CreatedLead,
    Lead,
    LeadPage,
    UpdatedLeads,
)
from leads_api_client.retry import RetryPolicy

__all__ = [
    "BadRequestError",
    "Change",
    "ChangesPage",
    "ClientError",
    "ConflictError",
    "CreatedLead",
    "ForbiddenError",
    "InternalServerError",
    "InvalidDateError",
    "InvalidFilterError",
    "Lead",
    "LeadPage",
    "LeadsApiError",
    "LeadsClient",
    "LeadsConnectionError",
    "MethodNotAllowedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailableError",
    "UnauthorizedError",
    "UnexpectedResponseError",
    "UnsupportedMediaTypeError",
    "UpdatedLeads",
    "ValidationError",
    "__version__",
]
