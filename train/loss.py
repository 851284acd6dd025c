"""JointsMSELoss with target weights (LPN_SPEC §4.5), vectorized over batch and joints."""
from __future__ import annotations

import torch


def joints_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(1/J) Σ_j 0.5·mean_{batch,pixels}[(w_j·(P_j − G_j))²], as HRNet's JointsMSELoss (OHKM off).

    pred, target: (N, J, H, W); weight: (N, J). Every joint averages over the same N·H·W values,
    so the mean over joints of per-joint means is the plain mean over all elements.
    """
    diff = (pred.float() - target.float()) * weight.float()[..., None, None]
    return 0.5 * diff.pow(2).mean()
