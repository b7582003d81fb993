"""The method contract (interpret_rl.testing.check_method, shipped for plugin authors), checked on
every registered method, built-in or not, on both sample agents."""

from __future__ import annotations

import pytest

from interpret_rl.methods import registered_methods
from interpret_rl.testing import ContractError, check_method, sample_agents

# Cheaper settings so the whole matrix runs in seconds; the options still exercise every code path
# (SmoothGrad noise, several IG steps, occlusion windows). Methods not listed run with defaults.
FAST = {
    "saliency": {"samples": "2"},
    "integrated-gradients": {"n_steps": "6"},
    "gradient-shap": {"samples": "3"},
    "perturbation": {"stride": "14"},
    "optim": {"steps": "4", "pool": "0"},  # pool 0: no real-state pool collected for a test agent
}
FAST_CNN = {"occlusion": {"window": "2,21,21", "stride": "2,21,21"}}
NOT_APPLICABLE = {("gradcam", "mlp"): "gradcam needs a convolutional layer"}

METHODS = sorted(registered_methods())
SLOW = {"edit"}  # 17 s of CPU on the CNN sample, 4.5 s on the MLP (2026-12-02)
SAMPLES = {sample.label: sample for sample in sample_agents()}


@pytest.mark.parametrize("kind", sorted(SAMPLES))
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in METHODS])
def test_contract(name, kind):
    options = {**FAST.get(name, {}), **(FAST_CNN.get(name, {}) if kind == "cnn" else {})}
    outcome = check_method(name, options, agents=[SAMPLES[kind]])[kind]
    if (name, kind) in NOT_APPLICABLE:
        assert outcome.startswith("not applicable") and NOT_APPLICABLE[name, kind] in outcome
    elif outcome != "ok":  # a third-party method may not apply; built-ins are listed above
        pytest.skip(f"{name} on {kind}: {outcome}")


def test_every_builtin_is_registered():
    assert {"saliency", "perturbation", "integrated-gradients", "gradcam", "occlusion", "deeplift",
            "gradient-shap", "optim"} <= set(METHODS)


def test_the_checks_catch_a_method_that_breaks_each_rule():
    """Oracle for the checker itself: one method per broken rule, each refused with that rule."""
    import torch

    from interpret_rl.methods import Method
    from interpret_rl.targets import actions_for, target_scores

    class Honest(Method):
        name, description, kind = "honest", "gradient of the target", "attribution"

        def explain(self, agent, target, observations):
            x = observations.detach().float().requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(target_scores(agent, target, x, actions_for(agent, target, x)).sum(), x)
            return self.explanation(target, grad)

    class Noisy(Honest):
        def explain(self, agent, target, observations):
            return self.explanation(target, super().explain(agent, target, observations).values + torch.rand(1))

    class Blind(Honest):  # never looks at the network
        def explain(self, agent, target, observations):
            return self.explanation(target, torch.zeros(observations.shape))

    class Hooking(Honest):
        def explain(self, agent, target, observations):
            agent.network.register_forward_hook(lambda *a: None)
            return super().explain(agent, target, observations)

    class Swallowing(Honest):
        def explain(self, agent, target, observations):
            try:
                return super().explain(agent, target, observations)
            except RuntimeError:
                return self.explanation(target, torch.zeros(observations.shape))

    def mlp():  # a fresh agent each time: a broken method may leave it broken
        return [sample for sample in sample_agents() if sample.label == "mlp"]

    assert check_method(Honest, agents=mlp()) == {"mlp": "ok"}
    for broken, rule in [(Noisy, "different result"), (Blind, "invalid target"), (Hooking, "forward hook"),
                         (Swallowing, "invalid target|swallowed")]:
        with pytest.raises(ContractError, match=rule):
            check_method(broken, agents=mlp())
