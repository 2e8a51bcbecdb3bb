"""Whose key this is: a client checks the company it was told to act for against the key's own."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CompanyDep
from api.schemas.common import ERRORS
from api.schemas.companies import KeyOwner

router = APIRouter(prefix="/company-automation", tags=["companies"], responses=ERRORS)


@router.get("/key", response_model=KeyOwner, summary="The company this key belongs to")
async def key_owner(caller: CompanyDep) -> KeyOwner:
    return KeyOwner(company_id=caller.company_id, key_id=caller.key_id)
