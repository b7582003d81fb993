"""Env steps and wall seconds until the 100-episode mean return first reaches 475 on CartPole-v1.

Our A2C, PPO, PQN and DQN (preset ``cartpole`` unless ``--preset``) and stable-baselines3's A2C,
PPO and DQN with their rl-zoo CartPole settings (SB3 has no PQN: its DQN is the Q-learning
reference for both), in one process, seed by seed and algorithm by algorithm, so all see the
same machine load. Prints one line per run as it ends (steps to 475, wall seconds, the final
100-episode mean), then per library and algorithm the median and range of steps to 475 (a run that
never reached it counts as infinite) and of wall seconds.
The mean is over the training episodes (a Q-learner's include its epsilon-greedy exploration).

    pip install -e ".[bench]"
    python benchmarks/cartpole_to_475.py --seeds 0 1 2 3 4 [--algos a2c ppo pqn dqn] [--libs ours sb3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

TARGET = 475.0
A2C_BUDGET = 1_000_000
"""Budget of A2C (constant learning rate). PPO, PQN and DQN anneal their learning rate (and clip
range, epsilon) over their preset's ``total_steps``, so they run within that budget, and so does
their stable-baselines3 counterpart (as rl-zoo's ``n_timesteps`` does)."""
ALGOS = ("a2c", "ppo", "pqn", "dqn")
SB3_COUNTERPART = {"a2c": "a2c", "ppo": "ppo", "dqn": "dqn"}  # pqn: compare with SB3's DQN


def budget(algo: str) -> int:
    from interpret_rl.rollout import algorithm_module

    return A2C_BUDGET if algo == "a2c" else algorithm_module(algo).PRESETS["cartpole"]["total_steps"]


Run = tuple[int | None, float, float]
"""Steps when the 100-episode mean first reached 475 (None: never), wall seconds, the final mean."""


def run_ours(seed: int, algo: str, preset: str) -> Run:
    from interpret_rl.rollout import algorithm_module

    algorithm = algorithm_module(algo)
    config = algorithm.config_from_preset(preset, seed=seed, total_steps=budget(algo), target_return=TARGET,
                                          log_every_steps=10**9)
    result = algorithm.train(config)
    return result.reached_target_at, result.seconds, result.mean_return


def sb3_model(algo: str, env, seed: int):
    """stable-baselines3's counterpart with the rl-zoo CartPole-v1 hyperparameters."""
    from stable_baselines3 import A2C, PPO

    if algo == "a2c":  # zoo: 8 envs, 5 steps, RMSprop 7e-4, ent 0 (SB3's defaults otherwise)
        return A2C("MlpPolicy", env, ent_coef=0.0, seed=seed, device="cpu", verbose=0)
    if algo == "ppo":
        return PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                   ent_coef=0.0, learning_rate=lambda left: 1e-3 * left, clip_range=lambda left: 0.2 * left,
                   seed=seed, device="cpu", verbose=0)
    return sb3_dqn(env, seed)


def sb3_dqn(env, seed: int):
    """SB3's DQN with our DQN preset's settings, the same recipe on both sides (they began as rl-zoo's);
    one difference stays: SB3's DQN has no Double DQN targets."""
    from stable_baselines3 import DQN

    from interpret_rl.dqn import config_from_preset

    c = config_from_preset("cartpole")
    hidden, layer_norm = c.architecture_args["hidden"], c.architecture_args["layer_norm"]
    return DQN("MlpPolicy", env, learning_rate=(lambda left: c.lr * left) if c.lr_schedule == "linear" else c.lr,
               batch_size=c.batch_size, buffer_size=c.buffer_size, learning_starts=c.learning_starts, gamma=c.gamma,
               target_update_interval=c.target_update_steps, train_freq=c.n_steps, gradient_steps=c.gradient_steps,
               exploration_fraction=c.exploration_fraction, exploration_initial_eps=c.epsilon_start,
               exploration_final_eps=c.epsilon_end, max_grad_norm=c.max_grad_norm,
               policy_kwargs={**(layer_norm_mlp(hidden) if layer_norm else {"net_arch": hidden}),
                              "optimizer_kwargs": {"eps": c.optimizer_eps}},
               seed=seed, device="cpu", verbose=0)


def layer_norm_mlp(hidden: list[int]) -> dict:
    """SB3 policy_kwargs for our MLP Q-network with LayerNorm (``fc -> LayerNorm -> ReLU`` per
    hidden layer, then a linear head): SB3's net_arch has no LayerNorm, so the hidden layers become
    its features extractor and ``net_arch=[]`` leaves the linear Q head."""
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class LayerNormMLP(BaseFeaturesExtractor):
        def __init__(self, observation_space):
            super().__init__(observation_space, hidden[-1])
            layers, width = [], observation_space.shape[0]
            for size in hidden:
                layers += [torch.nn.Linear(width, size), torch.nn.LayerNorm(size), torch.nn.ReLU()]
                width = size
            self.net = torch.nn.Sequential(*layers)

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return self.net(obs)

    return {"features_extractor_class": LayerNormMLP, "net_arch": []}


def run_sb3(seed: int, algo: str) -> Run:
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    class StopAtTarget(BaseCallback):
        reached: int | None = None

        def _on_step(self) -> bool:
            buffer = self.model.ep_info_buffer
            if len(buffer) and sum(e["r"] for e in buffer) / len(buffer) >= TARGET:
                self.reached = self.num_timesteps
                return False
            return True

    env = make_vec_env("CartPole-v1", n_envs=1 if algo == "dqn" else 8, seed=seed)  # zoo DQN: one env
    model = sb3_model(algo, env, seed)
    callback = StopAtTarget()
    start = time.perf_counter()
    model.learn(budget(algo), callback=callback)
    seconds = time.perf_counter() - start
    returns = [e["r"] for e in model.ep_info_buffer]
    return callback.reached, seconds, sum(returns) / max(1, len(returns))


def summary(label: str, runs: list[Run]) -> None:
    steps = [s if s is not None else float("inf") for s, _, _ in runs]
    seconds = [t for _, t, _ in runs]
    reached = sum(s is not None for s, _, _ in runs)
    print(f"{label:>9}: reached {reached}/{len(runs)}, median {statistics.median(steps):,.0f} steps "
          f"(range {min(steps):,.0f}-{max(steps):,.0f}), median {statistics.median(seconds):.1f} s "
          f"(range {min(seconds):.1f}-{max(seconds):.1f})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--algos", choices=ALGOS, nargs="+", default=list(ALGOS))
    parser.add_argument("--libs", choices=["ours", "sb3"], nargs="+", default=["ours", "sb3"])
    parser.add_argument("--preset", default="cartpole")
    args = parser.parse_args()
    torch.set_num_threads(1)  # both libraries on one thread: the fastest setting for a small MLP
    runs: dict[str, list[Run]] = {}
    for seed in args.seeds:
        for algo in args.algos:
            for lib in args.libs:
                if lib == "sb3" and algo not in SB3_COUNTERPART:
                    continue
                label = f"{lib} {algo}"
                result = run_ours(seed, algo, args.preset) if lib == "ours" else run_sb3(seed, algo)
                runs.setdefault(label, []).append(result)
                print(f"{label} seed {seed}: {result[0]} steps, {result[1]:.1f} s, final mean {result[2]:.1f}",
                      flush=True)
    for label, results in runs.items():
        summary(label, results)


if __name__ == "__main__":
    main()
