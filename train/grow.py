"""``python -m train.grow --weights lpn50.pth --model lpn101 --out lpn101_grown.pth``: a deeper LPN from a trained one.

LPN-50/101/152 differ only in the number of blocks per stage ([3,4,6,3], [3,4,23,3], [3,8,36,3], LPN_SPEC
§1.5). The grown model copies every tensor of the smaller one (stem, head, and the first blocks of each
stage) and appends the extra blocks as identities: BN3 gamma and beta at 0 and the context block's last
conv at 0, so the branch adds nothing and ``relu(0 + x) = x`` for the post-ReLU input. The grown network
therefore computes exactly what the small one did, and fine-tuning starts from its accuracy. The output
records the source's crop size and target encoding (its flip-test shift), so ``train.ship`` and
``train.evaluate`` crop the grown model as the small one was trained.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from lpn_core import codec
from lpn_core.errors import LpnError
from lpn_core.model import LPN, LWBottleneck, create_model
from lpn_core.weights import read_state_dict

from .weights_meta import ARCHITECTURE_DEFAULT, crop_settings


def identity_block(block: LWBottleneck) -> None:
    """Make a stride-1, same-width block an exact identity on non-negative inputs."""
    nn.init.zeros_(block.bn3.weight)
    nn.init.zeros_(block.bn3.bias)
    nn.init.zeros_(block.att.channel_add_conv[-1].weight)
    nn.init.zeros_(block.att.channel_add_conv[-1].bias)


def grow(small: LPN, name: str) -> LPN:
    """``name`` (a deeper LPN) holding ``small``'s weights, extra blocks as identities."""
    big = create_model(name, init="kaiming")
    if any(b < s for b, s in zip(big.spec.blocks, small.spec.blocks)):
        raise LpnError(f"cannot grow {small.spec.blocks} into the shallower {name} {big.spec.blocks}")
    big.load_state_dict(small.state_dict(), strict=False)  # every key of the small model exists in the big one
    for stage, (n_small, n_big) in enumerate(zip(small.spec.blocks, big.spec.blocks), start=1):
        layer = getattr(big, f"layer{stage}")
        for index in range(n_small, n_big):
            identity_block(layer[index])
    return big


def recorded_crop_config(model: str, weights: str | Path) -> dict | None:
    """``input_size`` and ``unbiased_targets`` of ``weights`` as its run (or the manifest) recorded them, else None."""
    settings = crop_settings(model, weights)
    if settings.source == ARCHITECTURE_DEFAULT:
        return None
    return {"input_size": list(settings.input_size),
            "unbiased_targets": settings.flip_shift == codec.UNBIASED_FLIP_SHIFT}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.grow", description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, help="state dict of the smaller model")
    p.add_argument("--from-model", default="lpn50", help="architecture of --weights")
    p.add_argument("--model", required=True, help="deeper architecture, e.g. lpn101 or lpn152")
    p.add_argument("--out", required=True, help="where to write the grown state dict")
    return p


def run(args: argparse.Namespace) -> int:
    small = create_model(args.from_model, init=False)
    small.load_state_dict(read_state_dict(args.weights))
    big = grow(small, args.model)
    config = recorded_crop_config(args.from_model, args.weights)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(big.state_dict() if config is None else {"state_dict": big.state_dict(), "config": config}, args.out)
    recorded = "" if config is None else f" (crops {config['input_size'][0]}x{config['input_size'][1]} recorded)"
    print(f"{args.from_model} -> {args.model}: {args.out}{recorded}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .cli import cli_main

    return cli_main(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
