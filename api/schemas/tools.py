"""Tools: registered as JSON or imported from an OpenAPI 3 document; listed; removed."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from api.schemas.common import Identifier, Request, exactly_one

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


class ToolCreate(Request):
    name: Identifier
    description: str = Field(min_length=1, max_length=4000)
    parameters: dict[str, Any] = Field(description="JSON Schema of the arguments (must compile).")
    method: Method = "POST"
    url: str = Field(min_length=1, max_length=2000, description="http(s) URL; {name} placeholders take arguments.")
    headers: dict[str, str] = Field(default_factory=dict, max_length=64, description="Static headers (no secrets).")
    secret_ref: str | None = Field(default=None, max_length=1100, description="env:NAME or file:/path — a reference, "
                                   "never the secret itself.")
    timeout_ms: int = Field(default=10_000, ge=1, le=300_000)


class ToolsRegister(Request):
    """Either `tools`, or `openapi` (a whole OpenAPI 3 document whose operations become tools)."""

    tools: list[ToolCreate] | None = Field(default=None, min_length=1, max_length=500)
    openapi: dict[str, Any] | None = Field(default=None, description="An OpenAPI 3 document to import.")
    base_url: str | None = Field(default=None, max_length=2000, description="With openapi: the API's base URL, "
                                 "instead of the document's servers.")
    secret_ref: str | None = Field(default=None, max_length=1100, description="With openapi: the credential reference "
                                   "every imported tool uses.")
    timeout_ms: int = Field(default=10_000, ge=1, le=300_000, description="With openapi: bound on one call of each tool.")
    company_id: Identifier | None = Field(default=None, description="The key's company, where the caller names it "
                                          "(403 when it names another).")

    @model_validator(mode="after")
    def _one_source(self) -> ToolsRegister:
        exactly_one(self, "tools", "openapi", why="give exactly one of tools or openapi")
        return self


class ToolPublic(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any]
    method: str
    url: str
    headers: dict[str, str]
    secret_ref: str | None = None
    timeout_ms: int


class ToolsRegistered(BaseModel):
    registered: list[str] = Field(description="Names of the tools registered (or replaced), in order.")


class ToolList(BaseModel):
    tools: list[ToolPublic]


class ToolRemoved(BaseModel):
    removed: str
