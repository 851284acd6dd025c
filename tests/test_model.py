"""Model facts pinned to LPN_SPEC §1: parameter counts, FLOPs, official key names and shapes."""
from __future__ import annotations

import math

import pytest
import torch

from lpn_core import ModelError, count_flops, count_params, create_model, list_models
from lpn_core.model import MODELS

PARAMS = {"lpn50": 2_910_545, "lpn101": 5_352_306, "lpn152": 7_375_763}  # LPN_SPEC §1.7, LN excluded
PARAMS_WITH_LN = {"lpn50": 2_911_153, "lpn101": 5_353_458, "lpn152": 7_377_459}
MACS = {"lpn50": 1.070, "lpn101": 1.507, "lpn152": 1.946}  # true MACs, 1e9
REPO_FLOPS = {"lpn50": 1.008, "lpn101": 1.414, "lpn152": 1.822}  # official get_model_summary, /1024³


def test_registry_lists_the_three_models() -> None:
    assert list_models() == ["lpn50", "lpn101", "lpn152"]


def test_unknown_model_suggests_the_closest_name() -> None:
    with pytest.raises(ModelError, match="did you mean 'lpn50'"):
        create_model("lpn5O")


@pytest.mark.parametrize("name", list_models())
def test_parameter_counts_match_the_spec(name: str) -> None:
    model = create_model(name, init=False)
    assert count_params(model) == PARAMS[name]
    assert count_params(model, include_layernorm=True) == PARAMS_WITH_LN[name]


@pytest.mark.parametrize("name", list_models())
def test_flops_match_the_spec_both_ways(name: str) -> None:
    model = create_model(name, init=False)
    assert round(count_flops(model), 3) == MACS[name]
    assert round(count_flops(model, repo_convention=True), 3) == REPO_FLOPS[name]


def expected_state_dict_shapes(blocks: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Key names and shapes of an official checkpoint, written from LPN_SPEC §1.2-§1.9 alone."""
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, c: int) -> None:
        shapes.update({f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                       f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()})

    shapes["conv1.weight"] = (64, 3, 7, 7)
    bn("bn1", 64)
    c_in = 64
    for stage, (depth, width) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
        hidden = max(width // 16, 16)
        for i in range(depth):
            p = f"layer{stage}.{i}"
            shapes[f"{p}.conv1.weight"] = (width, c_in if i == 0 else width, 1, 1)
            bn(f"{p}.bn1", width)
            shapes[f"{p}.conv2.weight"] = (width, 1, 3, 3)  # depthwise
            bn(f"{p}.bn2", width)
            shapes[f"{p}.conv3.weight"] = (width, width, 1, 1)
            bn(f"{p}.bn3", width)
            shapes[f"{p}.att.conv_mask.weight"] = (1, width, 1, 1)
            shapes[f"{p}.att.conv_mask.bias"] = (1,)
            shapes[f"{p}.att.channel_add_conv.0.weight"] = (hidden, width, 1, 1)
            shapes[f"{p}.att.channel_add_conv.0.bias"] = (hidden,)
            shapes[f"{p}.att.channel_add_conv.1.weight"] = (hidden, 1, 1)
            shapes[f"{p}.att.channel_add_conv.1.bias"] = (hidden, 1, 1)
            shapes[f"{p}.att.channel_add_conv.3.weight"] = (width, hidden, 1, 1)
            shapes[f"{p}.att.channel_add_conv.3.bias"] = (width,)
            if i == 0 and stage > 1:  # projection in stages 2-4 only (64 = 64 in stage 1)
                shapes[f"{p}.downsample.0.weight"] = (width, c_in, 1, 1)
                bn(f"{p}.downsample.1", width)
        c_in = width
    shapes["deconv_layers.0.weight"] = (512, 1, 4, 4)  # groups 256: 2 input channels per output
    bn("deconv_layers.1", 256)
    shapes["deconv_layers.3.weight"] = (256, 256, 1, 1)
    bn("deconv_layers.4", 256)
    shapes["deconv_layers.6.weight"] = (256, 1, 4, 4)  # fully depthwise
    bn("deconv_layers.7", 256)
    shapes["deconv_layers.9.weight"] = (256, 256, 1, 1)
    bn("deconv_layers.10", 256)
    shapes["final_layer.weight"] = (17, 256, 1, 1)
    shapes["final_layer.bias"] = (17,)
    return shapes


@pytest.mark.parametrize("name", list_models())
def test_state_dict_has_the_official_key_names_and_shapes(name: str) -> None:
    state = create_model(name, init=False).state_dict()
    built = {k: tuple(v.shape) for k, v in state.items()}
    assert built == expected_state_dict_shapes(MODELS[name].blocks)


def test_an_official_style_state_dict_loads_strictly() -> None:
    spec_shapes = expected_state_dict_shapes(MODELS["lpn50"].blocks)
    fake_official = {k: torch.zeros(s) if s else torch.tensor(0) for k, s in spec_shapes.items()}
    create_model("lpn50", init=False).load_state_dict(fake_official, strict=True)


@pytest.mark.parametrize("name", list_models())
def test_forward_gives_spec_heatmap_shape(name: str) -> None:
    with torch.no_grad():
        out = create_model(name).eval()(torch.zeros(2, 3, 256, 192))
    assert out.shape == (2, 17, 64, 48)


def test_every_parameter_gets_a_gradient() -> None:
    model = create_model("lpn50", init=False).train()
    model(torch.randn(2, 3, 256, 192)).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


def test_training_init_draws_conv_weights_from_n0_0001() -> None:
    model = create_model("lpn50", init=True)
    w = model.layer3[0].conv1.weight.detach()
    assert abs(float(w.std()) - 0.001) < 1e-4
    assert float(model.bn1.weight.detach().min()) == 1.0 and float(model.bn1.bias.detach().abs().max()) == 0.0
    # GC blocks start from a re-drawn transform, as in the released code path (LPN_SPEC §1.4, §1.8)
    assert float(model.layer1[0].att.channel_add_conv[3].weight.detach().abs().max()) > 0


def test_gc_block_weights_sum_to_one_and_broadcast_over_space() -> None:
    block = create_model("lpn50", init=False).layer2[1].att.eval()
    x = torch.randn(1, 128, 8, 6)
    with torch.no_grad():
        weights = torch.softmax(block.conv_mask(x).view(1, -1), dim=1)
        delta = block(x) - x  # channel-add: the same offset at every pixel
    assert math.isclose(float(weights.sum()), 1.0, rel_tol=1e-5)
    assert torch.allclose(delta, delta[..., :1, :1].expand_as(delta), atol=1e-6)
