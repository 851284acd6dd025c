"""Lightweight Pose Network (Zhang, Tang, Wu, arXiv 1911.10346), exactly as LPN_SPEC §1.

Module and attribute names follow the official checkpoints (LPN_SPEC §1.9) so that
``lpn_50_256x192.pth`` loads with ``strict=True``.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Mapping

import torch
from torch import nn

from .errors import ModelError

NUM_JOINTS: Final = 17
DECONV_CHANNELS: Final = 256  # NUM_DECONV_FILTERS [256, 256], LPN_SPEC §1.6
INPUT_SIZE: Final = (256, 192)  # (H, W), LPN_SPEC §1.1
HEATMAP_SIZE: Final = (64, 48)  # (H, W), stride 4


@dataclass(frozen=True, slots=True)
class LpnSpec:
    """Depths of the four stages (ResNet-50/101/152 lists, LPN_SPEC §1.5)."""

    blocks: tuple[int, int, int, int]
    input_size: tuple[int, int] = INPUT_SIZE
    num_joints: int = NUM_JOINTS


MODELS: Final[Mapping[str, LpnSpec]] = MappingProxyType({
    "lpn50": LpnSpec(blocks=(3, 4, 6, 3)),
    "lpn101": LpnSpec(blocks=(3, 4, 23, 3)),
    "lpn152": LpnSpec(blocks=(3, 8, 36, 3)),
})


class ContextBlock(nn.Module):
    """GCNet context block, 'att' pooling, channel-add fusion only (LPN_SPEC §1.4)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(channels // 16, 16)
        self.conv_mask = nn.Conv2d(channels, 1, kernel_size=1)
        self.softmax = nn.Softmax(dim=2)
        self.channel_add_conv = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1),
            nn.LayerNorm([hidden, 1, 1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1),
        )
        # GCNet's own init: Kaiming for the mask, zeros for the last transform (identity at start).
        nn.init.kaiming_normal_(self.conv_mask.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.conv_mask.bias)
        nn.init.zeros_(self.channel_add_conv[-1].weight)
        nn.init.zeros_(self.channel_add_conv[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        weights = self.softmax(self.conv_mask(x).view(n, 1, h * w))  # (N, 1, HW), sums to 1
        context = torch.matmul(x.view(n, c, h * w), weights.transpose(1, 2)).view(n, c, 1, 1)
        return x + self.channel_add_conv(context)


class LWBottleneck(nn.Module):
    """ResNet bottleneck with expansion 1 and a depthwise 3x3, GC after BN3 (LPN_SPEC §1.3)."""

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, groups=planes, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.att = ContextBlock(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.att(self.bn3(self.conv3(y)))
        return self.relu(y + shortcut)


def _gd_layer(in_channels: int, out_channels: int = DECONV_CHANNELS) -> list[nn.Module]:
    """Group deconvolution x2 + pointwise conv (LPN_SPEC §1.6): six modules, named by index."""
    return [
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, output_padding=0,
                           groups=math.gcd(in_channels, out_channels), bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class LPN(nn.Module):
    """Stem, four LW stages (layer4 stride 1), two GD layers, final 1x1 conv -> (N, 17, H/4, W/4)."""

    def __init__(self, spec: LpnSpec) -> None:
        super().__init__()
        self.spec = spec
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        widths, strides = (64, 128, 256, 512), (1, 2, 2, 1)
        in_channels = 64
        for index, (depth, width, stride) in enumerate(zip(spec.blocks, widths, strides), start=1):
            blocks = [LWBottleneck(in_channels, width, stride)]
            blocks += [LWBottleneck(width, width) for _ in range(depth - 1)]
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
            in_channels = width
        self.deconv_layers = nn.Sequential(*_gd_layer(512), *_gd_layer(DECONV_CHANNELS))
        self.final_layer = nn.Conv2d(DECONV_CHANNELS, spec.num_joints, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.final_layer(self.deconv_layers(x))

    def init_weights(self) -> None:
        """Training init of the released code (LPN_SPEC §1.8): N(0, 0.001²) for every (de)conv weight."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(module.weight, std=0.001)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def init_weights_kaiming(self) -> None:
        """Init for training from scratch on little compute (not the paper's; see docs/WEIGHTS.md).

        Kaiming-normal (fan_out) convs as torchvision's ResNet, BN3 of every block at gamma 0 so each
        residual branch starts as the identity (Goyal et al. 2017), GCNet's own init for the context
        blocks, and the final layer N(0, 0.001^2). With BN after every conv the weight scale does not
        change the forward pass, but under Adam it sets the relative step: tiny weights make
        every update huge relative to the weight, which is what slows the paper's init here.
        """
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, LWBottleneck):
                nn.init.zeros_(module.bn3.weight)
            if isinstance(module, ContextBlock):
                nn.init.kaiming_normal_(module.conv_mask.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(module.channel_add_conv[-1].weight)
                nn.init.zeros_(module.channel_add_conv[-1].bias)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.zeros_(self.final_layer.bias)

    def reinit_head(self) -> None:
        """Before seeding from a file (LPN_SPEC §1.8), as the released ``init_weights(pretrained)``:
        transposed convs N(0, 0.001²), their BNs 1/0, final layer N(0, 0.001²) with bias 0
        (the 1x1 convs inside the GD layers are left as they are)."""
        for module in self.deconv_layers.modules():
            if isinstance(module, nn.ConvTranspose2d):
                nn.init.normal_(module.weight, std=0.001)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.zeros_(self.final_layer.bias)


def list_models() -> list[str]:
    """Registered model names, smallest first."""
    return list(MODELS)


def check_model_name(name: str) -> str:
    """Return ``name`` if registered, else raise ModelError with a suggestion."""
    if name in MODELS:
        return name
    near = difflib.get_close_matches(name, MODELS, n=1)
    hint = f"did you mean '{near[0]}'?" if near else f"choose one of: {', '.join(MODELS)}"
    raise ModelError(f"unknown model '{name}': {hint}")


INITS = ("paper", "kaiming")


def create_model(name: str, init: bool | str = True) -> LPN:
    """Build a registered LPN. ``init``: True or 'paper' applies the paper's training init (LPN_SPEC §1.8),
    'kaiming' :meth:`LPN.init_weights_kaiming`, False leaves PyTorch's defaults (weights are loaded next)."""
    model = LPN(MODELS[check_model_name(name)])
    if init is True or init == "paper":
        model.init_weights()
    elif init == "kaiming":
        model.init_weights_kaiming()
    elif init:
        raise ModelError(f"unknown init '{init}': choose one of {', '.join(INITS)}")
    return model


def count_params(model: nn.Module, include_layernorm: bool = False) -> int:
    """Parameter count; the official repo's convention leaves LayerNorm out (LPN_SPEC §1.7)."""
    total = 0
    for module in model.modules():
        if isinstance(module, nn.LayerNorm) and not include_layernorm:
            continue
        total += sum(p.numel() for p in module.parameters(recurse=False))
    return total


def count_flops(model: LPN, repo_convention: bool = False) -> float:
    """Multiply-accumulates of one forward pass at the spec's input size, in units of 1e9.

    ``repo_convention=False``: true MACs (transposed convs at input resolution, the GC matmul
    counted). ``True``: the official ``get_model_summary`` count, Σ(conv weight numel x output
    H·W) / 1024³, with transposed convs charged at output resolution and no matmul (LPN_SPEC §1.7).
    """
    macs = 0

    def conv_hook(module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, nn.ConvTranspose2d) and not repo_convention:
            pixels = inputs[0].shape[2] * inputs[0].shape[3]
        else:
            pixels = output.shape[2] * output.shape[3]
        macs += module.weight.numel() * pixels

    def context_hook(module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        nonlocal macs
        _, c, h, w = inputs[0].shape
        macs += c * h * w  # attention-weighted pooling: (C x HW) @ (HW x 1)

    handles = [m.register_forward_hook(conv_hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    if not repo_convention:
        handles += [m.register_forward_hook(context_hook) for m in model.modules() if isinstance(m, ContextBlock)]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, *model.spec.input_size))
    finally:
        for handle in handles:
            handle.remove()
    return macs / (1024 ** 3 if repo_convention else 1e9)
