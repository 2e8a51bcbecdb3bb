"""A Python client of cda's REST API, in the seed's words: `CompanyAutomation` (async) and
`SyncCompanyAutomation`, typed errors in `cda.client.errors`, results in `cda.client.results`."""

from cda.client.automation import CompanyAutomation, SyncCompanyAutomation
from cda.client.errors import ApiRefused, AutomationError, InvalidRequest, NotFound, TimedOut, Unauthorized, Unavailable, WrongCompany
from cda.client.results import AutomationResult, RecordResult, TrainingResult

__all__ = ["ApiRefused", "AutomationError", "AutomationResult", "CompanyAutomation", "InvalidRequest", "NotFound",
           "RecordResult", "SyncCompanyAutomation", "TimedOut", "TrainingResult", "Unauthorized", "Unavailable",
           "WrongCompany"]
