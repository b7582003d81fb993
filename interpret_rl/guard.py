"""A snapshot of a network that reports and undoes what a plugin changed (weights, torch hooks, mode).

Used around every method call (compare) and every metric (metrics): a plugin that breaks the
"leave the model as found" contract gets an error, and the model is restored for the next one.
"""

from __future__ import annotations

from interpret_rl.lazy import lazy_module

torch = lazy_module("torch")

HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


class ModelGuard:
    """A snapshot of the network (weights, hook ids, mode) that can report and undo changes."""

    def __init__(self, network: torch.nn.Module):
        self.network = network
        self.state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        self.hooks = {name: {d: set(getattr(m, d, {})) for d in HOOK_DICTS} for name, m in network.named_modules()}
        self.training = network.training

    def changes(self) -> list[str]:
        """What differs from the snapshot, one short phrase each (empty: nothing)."""
        found = []
        current = self.network.state_dict()
        changed = [k for k, v in self.state.items() if k not in current or not torch.equal(current[k], v)]
        if changed:
            found.append(f"changed weights {', '.join(changed[:3])}{' ...' if len(changed) > 3 else ''}")
        for name, module in self.network.named_modules():
            for d in HOOK_DICTS:
                added = set(getattr(module, d, {})) - self.hooks.get(name, {}).get(d, set())
                if added:
                    kind = d.strip("_").replace("_", " ")[:-1]  # "_forward_hooks" -> "forward hook"
                    found.append(f"left {len(added)} torch {kind} on {name or 'the network'}")
        if self.network.training != self.training:
            found.append("switched the network's train/eval mode")
        return found

    def restore(self) -> None:
        """Put back the weights, remove hooks added since the snapshot, restore the mode."""
        with torch.no_grad():
            self.network.load_state_dict(self.state)
        for name, module in self.network.named_modules():
            for d in HOOK_DICTS:
                hooks = getattr(module, d, None)
                if hooks is None:
                    continue
                for key in set(hooks) - self.hooks.get(name, {}).get(d, set()):
                    del hooks[key]
                    for companion in (f"{d}_with_kwargs", f"{d}_always_called"):  # torch's per-hook flags
                        getattr(module, companion, {}).pop(key, None)
        self.network.train(self.training)
