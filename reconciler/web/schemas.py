"""The API's shapes: ``XBase`` (shared fields), ``XCreate`` (input), ``XPublic`` (output)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reconciler.web.queries import FindingFilter


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the OAuth2 token type, no secret)
    expires_in: int


class UserBase(_In):
    username: str = Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")
    role: Literal["officer", "supervisor", "auditor", "admin"]


class UserCreate(UserBase):
    password: str = Field(min_length=10, max_length=256)


class UserPublic(BaseModel):
    id: int
    username: str
    role: str
    active: bool = True
    locked_until: datetime | None = None


class FindingSummaryPublic(BaseModel):
    finding_id: str
    rule: str
    severity: str
    status: str
    resolution: str | None
    employer_id: str | None
    person_id: str
    name_en: str | None
    confidence: float
    first_seen: datetime
    due_at: datetime
    overdue: bool
    age_days: int
    assignee: str | None
    escalated: bool
    decision: str | None


class FindingPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[FindingSummaryPublic]


class FindingPublic(FindingSummaryPublic):
    action: str
    reasoning: str
    worker: dict[str, Any]
    evidence: list[dict[str, Any]]
    details: dict[str, Any]
    facts: dict[str, Any]
    last_seen: datetime
    resolved_at: datetime | None
    decided_by: str | None
    reason: str | None
    history: list[dict[str, Any]]
    reversals: list[dict[str, Any]]
    comparison: list[dict[str, Any]]
    links: list[dict[str, Any]]


class DecisionBase(_In):
    decision: Literal["confirm", "dismiss", "escalate", "reverse"] = Field(
        description="`reverse` asks for a reversal of an auto-registration (four-eyes)")
    reason: str | None = Field(default=None, max_length=2000,
                               description="mandatory to dismiss or to request a reversal")


class DecisionCreate(DecisionBase):
    pass


class DecisionPublic(BaseModel):
    finding_id: str
    decision: str
    status: str
    detail: str


class BulkDecisionCreate(DecisionBase):
    filter: FindingFilter = Field(default_factory=FindingFilter)
    limit: int = Field(default=100, ge=1, le=1000)


class BulkDecisionPublic(BaseModel):
    decided: list[DecisionPublic]
    skipped: list[dict[str, str]]


class AssignmentCreate(_In):
    assignee: str | None = Field(default=None, min_length=1, max_length=64,
                                 description="omit to take the finding yourself")


class ReversalApprovalCreate(_In):
    approve: bool


class ReversalPublic(BaseModel):
    id: int
    finding_id: str
    requested_by: str
    requested_at: datetime
    reason: str
    status: str
    decided_by: str | None
    decided_at: datetime | None


class AuditEntryPublic(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    subject: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    total: int
    items: list[AuditEntryPublic]


class ChainPublic(BaseModel):
    ok: bool
    entries: int
    message: str


class SavedFilterCreate(_In):
    name: str = Field(min_length=1, max_length=80)
    filter: FindingFilter


class SavedFilterPublic(BaseModel):
    id: int
    name: str
    filter: dict[str, Any]
