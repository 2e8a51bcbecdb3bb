"""The gate's measurement: a candidate adapter and what the company is served now, asked the same held-out
decisions through vLLM as served, in the prompts the agents would build for them now; and, where the company
has served jobs, a replay of a held-out share of them in the context they had."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import httpx

from context.memory import MemoryEntry
from core.grounding import NO_GROUNDING, Grounding
from core.grounding import load as load_grounding
from core.paths import UnsafePath
from core.retry import RetryPolicy
from core.settings import Settings
from inference.adapter_store import configured as store_configured
from inference.adapter_store import publish
from inference.candidates import candidate_name
from inference.errors import InferenceUnavailable
from inference.routing import served_name
from inference.vllm_api import VllmApi
from trainer.context import serving_context
from trainer.dataset import Dataset
from trainer.evaluate import EvaluationError, evaluate
from trainer.registry import LocalAdapterRegistry, UnknownVersion
from trainer.replay import held_out_replay
from trainer.served import active_adapter
from trainer.steps import with_done_steps

log = logging.getLogger(__name__)


class Comparison:
    """Candidate against baseline for one trainer: its vLLM, its registry (where the served version is found)."""

    def __init__(self, settings: Settings, registry: LocalAdapterRegistry, eval_policy: RetryPolicy) -> None:
        self.settings = settings
        self.registry = registry
        self.eval_policy = eval_policy
        self.vllm = VllmApi(settings.vllm_url, timeout_s=120)

    def compare(self, company: str, adapter_dir: Path, dataset: Dataset, memory: list[MemoryEntry]
                ) -> tuple[dict[str, float], dict[str, float], str]:
        """The candidate's metrics, those of what the company is served now, and which that was: both asked the
        held-out examples in the prompts the agents would build for them now (the company's memory recalled)."""
        candidate = candidate_name(company, uuid.uuid4().hex[:8])
        loaded = [candidate]
        grounding = _grounding(adapter_dir)
        self._load(company, candidate, adapter_dir)
        try:
            baseline_model, baseline, baseline_grounding = self._baseline(company, loaded)
            tools = list(dataset.tools)
            examples = with_done_steps(serving_context(dataset.eval, tools, memory, self.settings), 1.0)
            scores = evaluate(self.settings.vllm_url, candidate, examples, tools, policy=self.eval_policy,
                              grounding=grounding)
            current = evaluate(self.settings.vllm_url, baseline_model, examples, tools, policy=self.eval_policy,
                               grounding=baseline_grounding)
            names = {t.name for t in tools}
            replayed = [e for e in held_out_replay(self.settings, company) if e.tool_name in names]
            if replayed:  # the company's own served decisions, in the context they had
                for metrics, model, rules in ((scores, candidate, grounding),
                                              (current, baseline_model, baseline_grounding)):
                    scored = evaluate(self.settings.vllm_url, model, replayed, tools, policy=self.eval_policy,
                                      grounding=rules)
                    metrics.update(replay_exact=scored["exact_match"], replay_examples=scored["eval_examples"])
        finally:
            for name in loaded:
                self._unload_quietly(company, name)
        return scores, current, baseline

    def _baseline(self, company: str, loaded: list[str]) -> tuple[str, str, Grounding]:
        """(model to ask, label, its grounding rules): the served version (`adapter_activated`) loaded from the
        registry, or the base."""
        base = self.settings.served_base_name
        active = active_adapter(self.settings, company)
        if active is None:
            return base, base, NO_GROUNDING
        version = str(active["version"])
        try:
            stored = self.registry.get(company, version)
        except (UnknownVersion, UnsafePath):
            if served_name(company) in self.vllm.models():  # its rules are not here: asked without them
                return served_name(company), version, NO_GROUNDING
            log.warning("%s is served version %s, which neither this registry nor vLLM holds; comparing with the base",
                        company, version)
            return base, base, NO_GROUNDING
        name = candidate_name(company, uuid.uuid4().hex[:8], served=True)
        grounding = _grounding(Path(stored.path))
        self._load(company, name, Path(stored.path))
        loaded.append(name)
        return name, version, grounding

    def _load(self, company: str, name: str, path: Path) -> None:
        """`path` loaded as `name` on the vLLM the gate asks: directly (a shared disk), or, with an adapter store
        configured, put into the store and staged by the inference gateway, which downloads and checks it."""
        if store_configured(self.settings):
            self._stage(company, name, publish(self.settings, path))
            return
        response = self.vllm.load_adapter(name, str(path))
        if response.status_code != 200:
            raise EvaluationError(f"vLLM refused to load {path} for evaluation: HTTP {response.status_code}: "
                                  f"{response.text[:300]}")

    def _stage(self, company: str, name: str, uri: str) -> None:
        url = f"{self.settings.inference_url}/v1/candidates"
        try:
            answer = httpx.post(url, json={"company_id": company, "name": name, "uri": uri},
                                timeout=self.settings.adapter_registry_timeout_s, trust_env=False)
        except httpx.HTTPError as exc:
            raise InferenceUnavailable(f"the inference gateway at {url} did not answer: {exc}") from exc
        if answer.status_code in (404, 422):  # refused, or a gateway that stages nothing: no verdict possible
            raise EvaluationError(f"the gateway refused to stage {name} ({uri}): HTTP {answer.status_code}: "
                                  f"{answer.text[:300]}")
        if answer.status_code != 200:
            raise InferenceUnavailable(f"the gateway could not stage {name}: HTTP {answer.status_code}: "
                                       f"{answer.text[:300]}")

    def _unload_quietly(self, company: str, name: str) -> None:
        try:
            if store_configured(self.settings):
                httpx.delete(f"{self.settings.inference_url}/v1/candidates/{company}/{name}", timeout=30,
                             trust_env=False)
            else:
                self.vllm.unload_adapter(name)
        except (InferenceUnavailable, httpx.HTTPError) as exc:
            log.warning("could not unload %s: %s", name, exc)


def _grounding(folder: Path) -> Grounding:
    """An adapter's grounding rules; unreadable ones are no verdict on the adapter but a fault of its files."""
    try:
        return load_grounding(folder)
    except ValueError as exc:
        raise EvaluationError(f"the adapter at {folder} carries unreadable grounding rules: {exc}") from None
