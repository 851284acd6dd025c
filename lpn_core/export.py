"""`python -m lpn_core.export --model lpn50 --weights PATH --out lpn50.onnx`: ONNX with a dynamic batch axis."""
from __future__ import annotations

import argparse
import sys

from .backends import save_onnx
from .errors import LpnError
from .model import list_models
from .weights import model_with_weights, resolve_weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lpn_core.export", description=__doc__)
    parser.add_argument("--model", default="lpn50", help=f"one of {', '.join(list_models())}")
    parser.add_argument("--weights", default=None, help="checkpoint path, or 'untrained' (default: resolve)")
    parser.add_argument("--out", required=True, help="output .onnx path")
    args = parser.parse_args(argv)
    try:
        path = resolve_weights(args.model, args.weights)
        print(f"wrote {save_onnx(model_with_weights(args.model, path), args.out)}")
    except LpnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
