"""Actor-critic networks and Q-networks.

Every network maps a batch of raw observations to ``(logits, value)``:

* input ``(B, *observation_shape)``, any dtype (uint8 frames are scaled inside the network, so
  the rollout buffer can stay uint8 and explanation methods see the agent's real input scale),
* ``logits``: ``(B, n_actions)``, unnormalised action scores of the policy; for continuous (Box)
  actions the mean of each action dimension, with a state-independent ``log_std`` parameter beside
  it (a diagonal Gaussian policy, as stable-baselines3's),
* ``value``: ``(B,)``, the critic's estimate (flat on purpose: a ``(B, 1)`` value against ``(B,)``
  returns silently broadcasts to ``(B, B)``).

A Q-network (for a Q-learner such as PQN) keeps the same contract with other meanings: its
outputs are the Q-values, so the target ``action:k`` is Q(s, k), and its value is
``max_a Q(s, a)``; every explanation method and metric works on it unchanged.

Submodules have stable, readable names (``trunk.conv3``, ``policy``, ``value``) because targets
of explanation methods are written with them (``conv3:12``, ``fc:100``).

Every network, built-in or a plugin's, is built as ``Network(observation_shape=[...], n_actions=N,
**architecture_args)`` (docs/methods-api.md, "Architectures"); ``architectures.current_args``
maps the ``obs_dim`` / ``in_channels`` that models saved before this contract recorded.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
from torch import nn

from interpret_rl.architectures import ObservationShapeError

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def orthogonal_init(module: nn.Module, gain: float) -> None:
    """Orthogonal weights with ``gain`` and zero biases (the A2C/PPO reference initialisation)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.orthogonal_(layer.weight, gain=gain)
            nn.init.zeros_(layer.bias)


def vector_width(observation_shape: Sequence[int]) -> int:
    """The input width of an MLP: observations of any shape are flattened (CartPole's ``(4,)`` is 4)."""
    try:
        sizes = [int(n) for n in observation_shape]
    except (TypeError, ValueError):  # a crafted meta.json: "ab", [null]
        raise ObservationShapeError(f"an observation shape is a list of sizes, not {observation_shape!r}") from None
    if not sizes or any(n < 1 for n in sizes):
        raise ObservationShapeError(f"an MLP needs a non-empty observation shape, not {sizes}")
    return math.prod(sizes)


def flatten_observations(x: torch.Tensor, observation_shape: Sequence[int]) -> torch.Tensor:
    """``(B, *observation_shape)`` -> ``(B, width)``; vectors pass unchanged."""
    return x if len(observation_shape) == 1 else x.flatten(-len(observation_shape))


def mlp_trunk(width: int, hidden: Sequence[int], activation: str, layer_norm: bool = False) -> nn.Sequential:
    """``fc{i}`` (-> ``norm{i}`` with ``layer_norm``) -> ``act{i}`` for each width in ``hidden``."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i, out in enumerate(hidden, start=1):
        layers[f"fc{i}"] = nn.Linear(width, out)
        if layer_norm:
            layers[f"norm{i}"] = nn.LayerNorm(out)
        layers[f"act{i}"] = ACTIVATIONS[activation]()
        width = out
    return nn.Sequential(layers)


class ObservationNormalizer(nn.Module):
    """Running mean and variance of the observations (as stable-baselines3's VecNormalize: clipped
    to +-10 standard deviations). Its statistics are buffers, so they are saved with the weights
    and every user of the network (evaluation, explanation methods) sees exactly the
    normalisation the agent was trained with; gradients flow through it back to the raw input.

    Training updates the statistics once per rollout, after the update (``rollout.run``), so the
    actions of a rollout and the update on it use the same statistics. Under torchrun each rank
    updates them from its own rollouts (gradients are averaged, these statistics are not); rank 0
    saves its own.
    """

    CLIP = 10.0
    EPS = 1e-8

    def __init__(self, shape: Sequence[int]):
        super().__init__()
        self.register_buffer("mean", torch.zeros(*shape))
        self.register_buffer("var", torch.ones(*shape))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / torch.sqrt(self.var + self.EPS)).clamp(-self.CLIP, self.CLIP)

    @torch.no_grad()
    def update(self, batch: torch.Tensor) -> None:
        """Merge the statistics of ``batch`` ``(B, *shape)`` (Chan et al.'s parallel algorithm)."""
        batch = batch.double()
        mean, var, count = self.mean.double(), self.var.double(), self.count
        b_mean, b_var, b_count = batch.mean(0), batch.var(0, unbiased=False), batch.shape[0]
        delta, total = b_mean - mean, count + b_count
        new_var = (var * count + b_var * b_count + delta.pow(2) * count * b_count / total) / total
        self.mean.copy_(mean + delta * b_count / total)
        self.var.copy_(new_var)
        self.count.fill_(float(total))


class ActorCritic(nn.Module):
    """Shared trunk, then a policy head and a value head.

    Subclasses build ``self.trunk`` and set ``self.features`` (width of the trunk's output);
    ``_finish_init`` adds the heads and the reference initialisation: gain sqrt(2) in the trunk,
    0.01 on the policy logits (near-uniform first policy), 1.0 on the value head.
    With ``continuous`` the policy head outputs the mean of each action dimension and ``log_std``
    (initialised to 0, as stable-baselines3) is the Gaussian's log standard deviation.
    """

    trunk: nn.Module

    def __init__(self, observation_shape: Sequence[int] | None = None, normalize_observations: bool = False) -> None:
        super().__init__()
        # A separate trunk for the value head, or None when actor and critic share ``trunk``.
        # (Set here, not as a class attribute: a class-level None would hide the submodule.)
        self.critic_trunk: nn.Module | None = None
        self.obs_norm = ObservationNormalizer(observation_shape) if normalize_observations else None
        self.log_std: nn.Parameter | None = None

    def _finish_init(self, features: int, n_actions: int, continuous: bool = False,
                     critic_features: int | None = None) -> None:
        self.policy = nn.Linear(features, n_actions)
        self.value = nn.Linear(features if critic_features is None else critic_features, 1)
        orthogonal_init(self.trunk, math.sqrt(2))
        if self.critic_trunk is not None:
            orthogonal_init(self.critic_trunk, math.sqrt(2))
        orthogonal_init(self.policy, 0.01)
        orthogonal_init(self.value, 1.0)
        if continuous:
            self.log_std = nn.Parameter(torch.zeros(n_actions))

    def preprocess(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float()
        return x if self.obs_norm is None else self.obs_norm(x)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.preprocess(obs)
        hidden = self.trunk(x)
        critic_hidden = hidden if self.critic_trunk is None else self.critic_trunk(x)
        return self.policy(hidden), self.value(critic_hidden).squeeze(-1)


class MLPActorCritic(ActorCritic):
    """MLP actor-critic for vector observations (CartPole and other toy tasks).

    :param observation_shape: ``(length,)`` of the observation vector (other shapes are flattened).
    :param n_actions: number of discrete actions (with ``continuous``: of action dimensions).
    :param hidden: widths of the hidden layers of the shared trunk.
    :param activation: ``"tanh"`` or ``"relu"``.
    :param shared_trunk: actor and critic share the hidden layers; if False the critic gets its
        own copy (``critic_trunk``), as stable-baselines3's MlpPolicy does.
    :param continuous: a Gaussian policy over Box actions (see ``ActorCritic``).
    :param normalize_observations: normalise inputs by running statistics (``ObservationNormalizer``).
    :param critic_hidden: widths of the critic's own hidden layers where they differ from ``hidden``
        (SB3's ``net_arch=dict(pi=[...], vf=[...])``); implies ``shared_trunk=False``.
    """

    def __init__(self, observation_shape: Sequence[int], n_actions: int, hidden: Sequence[int] = (64, 64),
                 activation: str = "tanh", shared_trunk: bool = True, continuous: bool = False,
                 normalize_observations: bool = False, critic_hidden: Sequence[int] | None = None):
        obs_dim = vector_width(observation_shape)
        shape = tuple(int(n) for n in observation_shape)
        super().__init__(shape, normalize_observations)
        self.observation_shape = shape
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r} is not one of {sorted(ACTIVATIONS)}")
        self.trunk = mlp_trunk(obs_dim, hidden, activation)
        critic_features = None
        if not shared_trunk or critic_hidden is not None:
            critic_hidden = hidden if critic_hidden is None else critic_hidden
            self.critic_trunk = mlp_trunk(obs_dim, critic_hidden, activation)
            critic_features = critic_hidden[-1] if critic_hidden else obs_dim
        self._finish_init(hidden[-1] if hidden else obs_dim, n_actions, continuous, critic_features)

    def preprocess(self, obs: torch.Tensor) -> torch.Tensor:
        return flatten_observations(super().preprocess(obs), self.observation_shape)


class SmallCNNActorCritic(ActorCritic):
    """The MinAtar network (Young & Tian 2019): one conv 16x3x3/1 -> ReLU -> linear ``hidden`` ->
    ReLU -> heads, for small channels-first grids such as MinAtar's ``(C, 10, 10)`` (float 0/1
    inputs, no scaling).

    :param observation_shape: ``(channels, height, width)``.
    :param n_actions: number of discrete actions.
    :param hidden: width of the fully connected layer.
    """

    def __init__(self, observation_shape: Sequence[int], n_actions: int, hidden: int = 128):
        super().__init__()
        channels, height, width = observation_shape
        self.trunk = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(channels, 16, 3, stride=1)), ("relu1", nn.ReLU()), ("flatten", nn.Flatten()),
            ("fc", nn.Linear(16 * (height - 2) * (width - 2), hidden)), ("relu2", nn.ReLU())]))
        self._finish_init(hidden, n_actions)



def nature_cnn_trunk(observation_shape: Sequence[int], hidden: int, layer_norm: bool) -> nn.Sequential:
    """conv 32x8x8/4 -> conv 64x4x4/2 -> conv 64x3x3/1 -> linear ``hidden``, ReLU after each; with
    ``layer_norm`` a LayerNorm (``norm1``..``norm4``) before every ReLU. ``observation_shape`` is
    ``(channels, height, width)``: 84x84 frames leave 64x7x7 features, the smallest frame is 36x36."""
    if len(observation_shape) != 3 or min(observation_shape[1:]) < 36 or observation_shape[0] < 1:
        raise ObservationShapeError(f"the Nature CNN takes (channels, height, width) frames of at least 36x36, "
                                    f"not {list(observation_shape)}")
    channels, height, width = (int(n) for n in observation_shape)
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    convs = [(channels, 32, 8, 4), (32, 64, 4, 2), (64, 64, 3, 1)]  # (in, out, kernel, stride)
    for i, (c_in, c_out, kernel, stride) in enumerate(convs, start=1):
        height, width = (height - kernel) // stride + 1, (width - kernel) // stride + 1
        layers[f"conv{i}"] = nn.Conv2d(c_in, c_out, kernel, stride=stride)
        if layer_norm:
            layers[f"norm{i}"] = nn.LayerNorm([c_out, height, width])
        layers[f"relu{i}"] = nn.ReLU()
    layers["flatten"] = nn.Flatten()
    layers["fc"] = nn.Linear(64 * height * width, hidden)
    if layer_norm:
        layers["norm4"] = nn.LayerNorm(hidden)
    layers["relu4"] = nn.ReLU()
    return nn.Sequential(layers)


class NatureCNNActorCritic(ActorCritic):
    """The DQN "Nature" CNN (Mnih et al. 2015) with policy and value heads.

    Input: ``(B, frames, 84, 84)`` uint8 (channels-first, newest frame last), divided by 255 here.
    conv 32x8x8/4 -> conv 64x4x4/2 -> conv 64x3x3/1 -> linear 512 -> heads.

    :param observation_shape: ``(frames, height, width)``, ``(4, 84, 84)`` in the standard Atari setup.
    :param n_actions: number of discrete actions.
    :param hidden: width of the fully connected layer.
    :param shared_trunk: False gives the critic its own CNN (SB3's ``share_features_extractor=False``).
    :param normalize_images: divide the input by 255 (False: SB3's ``normalize_images=False``).
    """

    def __init__(self, observation_shape: Sequence[int], n_actions: int, hidden: int = 512,
                 shared_trunk: bool = True, normalize_images: bool = True):
        super().__init__()
        self.normalize_images = normalize_images
        self.trunk = nature_cnn_trunk(observation_shape, hidden, layer_norm=False)
        if not shared_trunk:
            self.critic_trunk = nature_cnn_trunk(observation_shape, hidden, layer_norm=False)
        self._finish_init(hidden, n_actions)

    def preprocess(self, obs: torch.Tensor) -> torch.Tensor:
        # Scaling lives in the network so buffers stay uint8 (4x less memory) and every
        # explanation method sees the same input scale as the environment produces.
        x = obs.float() / 255.0 if self.normalize_images else obs.float()
        # channels-last makes oneDNN's CPU convolutions (forward and backward) about 1.6x faster
        # (measured: batch 80 fwd+bwd 77 -> 48 ms on 2 cores); values are unchanged.
        return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


class QNetwork(nn.Module):
    """A trunk, then one linear output per action: ``(Q (B, A), max_a Q (B,))``.

    LayerNorm before every activation (Gallici et al. 2024, PQN: it is what keeps TD learning
    stable without a target network or replay buffer); orthogonal init with gain sqrt(2)
    everywhere, the output layer included (CleanRL's pqn_atari).

    With ``n_quantiles`` > 1 the output layer holds a return distribution (QR-DQN): quantile ``j``
    of action ``a`` is unit ``j * n_actions + a`` of ``q``, and Q(s, a) is the mean over quantiles.
    """

    trunk: nn.Module

    def _finish_init(self, features: int, n_actions: int, n_quantiles: int = 1, orthogonal: bool = True) -> None:
        self.n_quantiles = n_quantiles
        self.q = nn.Linear(features, n_actions * n_quantiles)
        if orthogonal:
            orthogonal_init(self, math.sqrt(2))

    def preprocess(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float()

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q_values = self.q(self.trunk(self.preprocess(obs)))
        if self.n_quantiles > 1:
            q_values = q_values.view(q_values.shape[0], self.n_quantiles, -1).mean(1)
        return q_values, q_values.max(-1).values


class MLPQNetwork(QNetwork):
    """MLP Q-network for vector observations: ``fc -> LayerNorm -> ReLU`` per hidden layer.

    :param observation_shape: ``(length,)`` of the observation vector (other shapes are flattened).
    :param n_actions: number of discrete actions.
    :param hidden: widths of the hidden layers.
    :param layer_norm: False gives the plain MLP of DQN (its target network and replay buffer do
        the stabilising instead).
    :param activation: ``"relu"`` or ``"tanh"``.
    :param n_quantiles: quantiles per action (QR-DQN); Q is their mean.
    :param orthogonal: False keeps PyTorch's default initialisation of the linear layers, as the
        DQN networks of SB3 and CleanRL have it (their CartPole settings were tuned with it).
    """

    def __init__(self, observation_shape: Sequence[int], n_actions: int, hidden: Sequence[int] = (256, 256),
                 layer_norm: bool = True, activation: str = "relu", n_quantiles: int = 1, orthogonal: bool = True):
        super().__init__()
        obs_dim = vector_width(observation_shape)
        self.observation_shape = tuple(int(n) for n in observation_shape)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r} is not one of {sorted(ACTIVATIONS)}")
        self.trunk = mlp_trunk(obs_dim, hidden, activation, layer_norm)
        self._finish_init(hidden[-1] if hidden else obs_dim, n_actions, n_quantiles, orthogonal)

    def preprocess(self, obs: torch.Tensor) -> torch.Tensor:
        return flatten_observations(super().preprocess(obs), self.observation_shape)


class NatureCNNQNetwork(QNetwork):
    """The Nature CNN with LayerNorm after every layer (CleanRL's PQN network) and a Q head.

    Input: ``(B, frames, 84, 84)`` uint8, divided by 255 here (as in ``NatureCNNActorCritic``).

    :param observation_shape: ``(frames, height, width)``.
    :param n_actions: number of discrete actions.
    :param hidden: width of the fully connected layer.
    :param layer_norm: False gives the plain Nature CNN of DQN and QR-DQN.
    :param normalize_images: divide the input by 255 (False: SB3's ``normalize_images=False``).
    :param n_quantiles: quantiles per action (QR-DQN); Q is their mean.
    """

    def __init__(self, observation_shape: Sequence[int], n_actions: int, hidden: int = 512, layer_norm: bool = True,
                 normalize_images: bool = True, n_quantiles: int = 1):
        super().__init__()
        self.normalize_images = normalize_images
        self.trunk = nature_cnn_trunk(observation_shape, hidden, layer_norm=layer_norm)
        self._finish_init(hidden, n_actions, n_quantiles)

    preprocess = NatureCNNActorCritic.preprocess


BUILTIN_ARCHITECTURES: dict[str, type[nn.Module]] = {
    "mlp": MLPActorCritic,
    "nature-cnn": NatureCNNActorCritic,
    "small-cnn": SmallCNNActorCritic,
    "mlp-q": MLPQNetwork,
    "nature-cnn-q": NatureCNNQNetwork,
}
