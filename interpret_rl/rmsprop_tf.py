"""RMSprop as TensorFlow 1 computed it, which is what the A2C reference results were tuned with.

Two differences from ``torch.optim.RMSprop`` matter for A2C (a2c-checklist item 13):

* epsilon is added *inside* the square root: ``g / sqrt(v + eps)`` instead of ``g / (sqrt(v) + eps)``;
  with eps = 1e-5 that caps the first steps at about lr / sqrt(1e-5) rather than lr / 1e-5;
* the running average of squared gradients starts at one, not zero, so the first updates are
  small instead of sign-like steps of size lr / sqrt(1 - alpha).
"""

from __future__ import annotations

import torch
from torch.optim import Optimizer


class RMSpropTF(Optimizer):
    """:param lr: learning rate. :param alpha: decay of the squared-gradient average.
    :param eps: added to the average inside the square root."""

    def __init__(self, params, lr: float = 7e-4, alpha: float = 0.99, eps: float = 1e-5):
        if lr <= 0 or not 0.0 <= alpha < 1.0 or eps <= 0:
            raise ValueError(f"invalid RMSpropTF settings lr={lr}, alpha={alpha}, eps={eps}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            for p in params:
                if "square_avg" not in self.state[p]:
                    self.state[p]["square_avg"] = torch.ones_like(p)
            square_avgs = [self.state[p]["square_avg"] for p in params]
            # v = alpha * v + (1 - alpha) * g^2 ; p -= lr * g / sqrt(v + eps)
            torch._foreach_mul_(square_avgs, group["alpha"])
            torch._foreach_addcmul_(square_avgs, grads, grads, value=1.0 - group["alpha"])
            denom = torch._foreach_add(square_avgs, group["eps"])
            torch._foreach_sqrt_(denom)
            torch._foreach_addcdiv_(params, grads, denom, value=-group["lr"])
        return loss
