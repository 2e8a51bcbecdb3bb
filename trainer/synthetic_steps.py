"""A synthetic company whose work takes more than one call, and records that none of its tools fits: what
`BENCH A7` (a lookup, then the action with what the lookup returned) and `BENCH A8` (declines) measure.

Kestrel bills, refunds and upgrades customers it knows by e-mail or phone; its action endpoints take its own
account and member ids, which only its lookup endpoints know. So the right call sequence for "bill this
customer" is `find_account(email)`, then `bill_account(account_id=<what the lookup answered>, cents=...)`, then
done. Lookups answer deterministically (`lookup_answer`), so the benchmark's loopback API and the labels agree.
Records about work Kestrel has no tool for (translating a note, booking a room) are answered `none`."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

from core.prompts import DECLINE, ToolSpec
from trainer import values

STEP_COMPANY = "kestrel"
_OBJ = {"type": "object", "additionalProperties": False}
STEP_TOOLS = (
    ToolSpec("find_account", "Look up a customer's account by e-mail", {
        **_OBJ, "properties": {"email": {"type": "string"}}, "required": ["email"]}),
    ToolSpec("find_member", "Look up a loyalty member by phone", {
        **_OBJ, "properties": {"phone": {"type": "string"}}, "required": ["phone"]}),
    ToolSpec("bill_account", "Bill an account", {
        **_OBJ, "properties": {"account_id": {"type": "string"}, "cents": {"type": "integer"}},
        "required": ["account_id", "cents"]}),
    ToolSpec("credit_account", "Refund an account", {
        **_OBJ, "properties": {"account_id": {"type": "string"}, "cents": {"type": "integer"}},
        "required": ["account_id", "cents"]}),
    ToolSpec("upgrade_member", "Move a member to a tier", {
        **_OBJ, "properties": {"member_id": {"type": "string"}, "tier": {"enum": ["T1", "T2", "T3"]}},
        "required": ["member_id", "tier"]}),
    ToolSpec("open_case", "Open a support case", {
        **_OBJ, "properties": {"ref": {"type": "string"}, "level": {"enum": ["P3", "P2", "P1"]}},
        "required": ["ref", "level"]}),
)
_TIERS = {"bronze": "T1", "silver": "T2", "gold": "T3"}
_LEVELS = {"low": "P3", "medium": "P2", "high": "P1"}
_LOOKUP_FIELD = {"find_account": ("email", "account_id", "AC"), "find_member": ("phone", "member_id", "MB")}
_TASKS = {
    "bill": ("Bill the customer", "Charge this customer", "Send the customer a bill"),
    "refund": ("Refund the customer", "Give this customer their money back", "Credit the customer"),
    "upgrade": ("Upgrade the member", "Move this member up a tier", "Change the member's tier"),
    "case": ("Open a case", "The customer has a problem, open a case", "Log a support case"),
}
_FOREIGN_TASKS = ("Translate the note", "Book a meeting room", "Order new office chairs", "Summarise the contract",
                  "Rename the project", "Plan the team lunch", "Archive the old photos", "Reset the printer",
                  "Write a poem for the newsletter", "Renew the domain name")
_FOREIGN_KEYS = ("note", "room", "chairs", "title", "project", "guests", "album", "printer", "topic", "domain")
_NAMES = ("ann", "bo", "cy", "di", "ed", "flo", "gus", "hal", "ivy", "jo", "kim", "lu")
_DOMAINS = ("mail.io", "post.net", "inbox.org", "web.de")


@dataclass(frozen=True)
class LabelledUnit:
    """One record and the calls that serve it, each with what its tool answered (none: no tool fits)."""

    task: str
    data: dict[str, Any]
    calls: tuple[tuple[str, dict[str, Any], dict[str, Any]], ...]

    @property
    def declined(self) -> bool:
        return not self.calls

    def expected(self) -> dict[str, Any]:
        """The unit as `POST /process` takes it in `expected`."""
        if not self.calls:
            return {"tool": DECLINE}
        return {"calls": [{"tool": tool, "arguments": arguments} for tool, arguments, _ in self.calls]}

    def training_example(self) -> dict[str, Any]:
        """The record as `POST /train-adapter` takes it: `calls` with their answers, or `tool: "none"`."""
        if not self.calls:
            return {"task": self.task, "data": self.data, "tool": DECLINE}
        return {"task": self.task, "data": self.data,
                "calls": [{"tool": t, "arguments": a, "result": r} for t, a, r in self.calls]}


def lookup_answer(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """What Kestrel's lookup endpoint answers: the id it keeps for that e-mail or phone (a pure function of it)."""
    key, field, prefix = _LOOKUP_FIELD[tool]
    digest = hashlib.sha256(f"{tool}:{arguments.get(key)}".encode()).hexdigest()
    return {field: f"{prefix}-{digest[:8]}", "status": "active"}


def _done_answer(rng: random.Random) -> dict[str, Any]:
    return {"id": rng.randint(1, 99_999), "status": rng.choice(("ok", "created", "queued"))}


def step_units(n: int, seed: int | str, declines: float = 0.0) -> list[LabelledUnit]:
    """Kestrel's jobs: mostly a lookup and an action; a case is one call; a `declines` share fits no tool."""
    rng = random.Random(f"{STEP_COMPANY}:{seed}")
    out = []
    for _ in range(n):
        if rng.random() < declines:
            at = rng.randrange(len(_FOREIGN_TASKS))
            data: dict[str, Any] = {_FOREIGN_KEYS[at]: values.draw(rng, "name", rng.choice((1, 2))),
                                    "email": _email(rng)}
            out.append(LabelledUnit(rng.choice((_FOREIGN_TASKS[at], _FOREIGN_TASKS[at].lower())), data, ()))
            continue
        kind = rng.choice(("bill", "refund", "upgrade", "case"))
        task = rng.choice(_TASKS[kind])
        if kind in ("bill", "refund"):
            email, amount = _email(rng), rng.randint(1, 500)
            found = lookup_answer("find_account", {"email": email})
            action = "bill_account" if kind == "bill" else "credit_account"
            calls = (("find_account", {"email": email}, found),
                     (action, {"account_id": found["account_id"], "cents": amount * 100}, _done_answer(rng)))
            data = {"email": email, "amount": amount}
        elif kind == "upgrade":
            phone, tier = f"+{rng.randint(10, 99)}{rng.randint(10**6, 10**8)}", rng.choice(list(_TIERS))
            found = lookup_answer("find_member", {"phone": phone})
            calls = (("find_member", {"phone": phone}, found),
                     ("upgrade_member", {"member_id": found["member_id"], "tier": _TIERS[tier]}, _done_answer(rng)))
            data = {"phone": phone, "tier": tier}
        else:
            ref, severity = f"K-{rng.randint(1000, 99_999)}", rng.choice(list(_LEVELS))
            calls = (("open_case", {"ref": ref, "level": _LEVELS[severity]}, _done_answer(rng)),)
            data = {"ref": ref, "severity": severity}
        items = list(data.items())
        rng.shuffle(items)
        out.append(LabelledUnit(task, dict(items), calls))
    return out


def _email(rng: random.Random) -> str:
    return f"{rng.choice(_NAMES)}{rng.randint(1, 999)}@{rng.choice(_DOMAINS)}"
