"""Diversity: K different inputs for one target (Olah et al. 2017, "Feature Visualization").

Optimising K inputs for one target from K random starts often gives K copies of one pattern. Olah et
al. add a term that penalises how alike the K inputs look *to the network*: the cosine similarity of
the Gram matrices (channel co-activations, a "style" in Gatys et al.'s sense) of a layer's
activations, summed over every pair. Style, not position, so the K images differ in what they draw
rather than in where they draw it.
"""

from __future__ import annotations

from interpret_rl.lazy import lazy_module

torch = lazy_module("torch")
F = lazy_module("torch.nn.functional")


def gram_similarity(activations: torch.Tensor) -> torch.Tensor:
    """Mean over the K rows of the summed cosine similarity of each row's Gram matrix with the
    others': ``(K, C, H, W)`` (or ``(K, D)``: plain cosine similarity of the rows) -> scalar.
    0 when all K are orthogonal, K - 1 when all are alike."""
    if activations.dim() > 2:
        flat = activations.flatten(2)
        grams = (flat @ flat.transpose(1, 2) / flat.shape[-1]).flatten(1)
    else:
        grams = activations
    unit = F.normalize(grams, dim=1, eps=1e-8)
    similarity = unit @ unit.T
    return (similarity.sum() - similarity.diagonal().sum()) / len(activations)


def diversity_layer(agent, layer: str | None) -> str | None:
    """The layer whose Gram matrices the diversity term compares: the target's own layer when it is
    spatial (``conv3`` for ``conv3:5``), else the deepest spatial layer of the network (a head's
    input has no positions); None when the network has no spatial layer (compare the inputs)."""
    from interpret_rl.targets import forward_to

    names = [name for name, _ in agent.network.named_modules() if name]
    blank = torch.zeros((1, *agent.observation_shape), device=agent.device)
    outputs = {}
    with torch.no_grad():
        for name in names:  # one short pass per module: the net is small and this runs once per call
            try:
                outputs[name] = forward_to(agent, blank, [name], heads=False)[0][name].dim()
            except ValueError:  # a module that does not return one tensor
                continue
    if layer is not None and outputs.get(layer) == 4:
        return layer
    spatial = [name for name in names if outputs.get(name) == 4 and not any(
        other.startswith(name + ".") for other in names)]  # leaves only: a Sequential repeats its last child
    return spatial[-1] if spatial else None
