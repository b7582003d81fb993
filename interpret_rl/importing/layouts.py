"""Renaming another library's weights onto our networks (interpret_rl/networks.py).

A ``Layout`` is the result: which of our architectures, its constructor arguments, the weights
under our names, and the source keys deliberately left out (a DQN's target network, the copies of
a shared feature extractor). ``KeyMap`` does the renaming and checks that every source key was
either used or left out on purpose, so an unknown extra layer is refused instead of dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from interpret_rl.importing.safe_read import ImportRefusedError

NATURE_CNN_LAYERS = ("conv1", "conv2", "conv3", "fc")


@dataclass
class Layout:
    architecture: str
    args: dict
    state: dict
    algo: str
    ignored: list[str] = field(default_factory=list)
    """Source key prefixes not imported, and why (``q_net_target (target network)``)."""


class KeyMap:
    """Copies ``source`` tensors under our names, remembering which source keys were used."""

    def __init__(self, source: dict, where: str):
        self.source, self.where = source, where
        self.state: dict = {}
        self.used: set[str] = set()

    def has(self, key: str) -> bool:
        return key in self.source

    def shape(self, key: str) -> tuple[int, ...]:
        if key not in self.source:
            raise ImportRefusedError(f"{self.where}: no weight {key!r}; the layout is not one this importer knows")
        return tuple(self.source[key].shape)

    def linear(self, ours: str, theirs: str) -> None:
        """Weight and bias of one layer (Linear or Conv2d)."""
        for part in ("weight", "bias"):
            self.shape(f"{theirs}.{part}")
            self.state[f"{ours}.{part}"] = self.source[f"{theirs}.{part}"]
            self.used.add(f"{theirs}.{part}")

    def sequential_indices(self, prefix: str) -> list[int]:
        """Indices ``i`` of the layers ``{prefix}.{i}.weight`` of an ``nn.Sequential``, in order."""
        head = f"{prefix}."
        return sorted({int(k[len(head):].split(".")[0]) for k in self.source
                       if k.startswith(head) and k.endswith(".weight") and k[len(head):].split(".")[0].isdigit()})

    def mlp(self, ours: str, theirs: str, indices: list[int]) -> list[int]:
        """Layers ``theirs.{i}`` onto ``ours.fc1, fc2...``; returns their widths."""
        widths = []
        for k, index in enumerate(indices, start=1):
            self.linear(f"{ours}.fc{k}", f"{theirs}.{index}")
            widths.append(self.shape(f"{theirs}.{index}.weight")[0])
        return widths

    def nature_cnn(self, ours: str, theirs: tuple[str, str, str, str]) -> dict:
        """Three convolutions and the linear layer onto ``ours.conv1..conv3, fc``; returns
        ``observation_shape`` (frames of 84x84: a state dict records no frame size, and CleanRL's and
        SB3's Atari networks take 84x84) and ``hidden``."""
        for our_name, their_name in zip(NATURE_CNN_LAYERS, theirs):
            self.linear(f"{ours}.{our_name}", their_name)
        return {"observation_shape": [self.shape(f"{theirs[0]}.weight")[1], 84, 84],
                "hidden": self.shape(f"{theirs[3]}.weight")[0]}

    def ignore(self, prefix: str) -> None:
        self.used.update(k for k in self.source if k.startswith(prefix))

    def check_all_used(self) -> None:
        unused = sorted(set(self.source) - self.used)
        if unused:
            more = " ..." if len(unused) > 4 else ""
            raise ImportRefusedError(f"{self.where}: weights {', '.join(unused[:4])}{more} fit no layer of the "
                                     f"recognised layout; not imported")

    def same(self, prefix_a: str, prefix_b: str) -> bool:
        """Whether two copies of a module hold identical tensors (SB3's shared extractor)."""
        import torch

        keys_a = sorted(k[len(prefix_a):] for k in self.source if k.startswith(prefix_a))
        keys_b = sorted(k[len(prefix_b):] for k in self.source if k.startswith(prefix_b))
        return keys_a == keys_b and all(torch.equal(self.source[prefix_a + k], self.source[prefix_b + k])
                                        for k in keys_a)


def check_sequential_of_linears(indices: list[int], prefix: str, where: str, step: int = 2) -> None:
    """An ``nn.Sequential`` of Linear layers with one activation between each: indices 0, 2, 4..."""
    if indices != list(range(0, step * len(indices), step)):
        raise ImportRefusedError(f"{where}: layers {prefix}.{indices} are not Linear layers each followed by one "
                                 f"activation; not a layout this importer knows")


def build(found: Layout, where: str):
    """Our network for ``found`` with its weights loaded; refuses weights whose shapes do not fit."""
    from interpret_rl.architectures import build_network

    try:
        network = build_network(found.architecture, found.args)
        network.load_state_dict(found.state, strict=True)
    except (RuntimeError, TypeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ImportRefusedError(f"{where}: weights do not fit {found.architecture} {found.args} ({first})") from None
    return network.eval()
