"""Env steps and wall seconds until the 100-episode mean return first reaches 475 on CartPole-v1.

Ours (``--algo``, preset ``cartpole``) and stable-baselines3 with its rl-zoo CartPole settings
(A2C for a2c, PPO for ppo, DQN for the Q-learners pqn and dqn), seed by seed, alternating in one process so
both see the same machine load. Prints one line per run and the medians with their ratio. The
mean is over the training episodes (a Q-learner's include its epsilon-greedy exploration).

    pip install -e ".[bench]"
    python benchmarks/cartpole_to_475.py --seeds 0 1 2 3 4 [--algo ppo] [--preset paper] [--skip-sb3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

TARGET = 475.0
BUDGET = 1_000_000
"""Budget of A2C (constant learning rate). PPO, PQN and DQN anneal their learning rate (and clip
range, epsilon) over their preset's ``total_steps``, so they run within that budget, and so does
their stable-baselines3 counterpart (as rl-zoo's ``n_timesteps`` does)."""


def budget(algo: str) -> int:
    from interpret_rl.rollout import algorithm_module

    return BUDGET if algo == "a2c" else algorithm_module(algo).PRESETS["cartpole"]["total_steps"]


def run_ours(seed: int, algo: str, preset: str) -> tuple[int | None, float]:
    from interpret_rl.rollout import algorithm_module

    algorithm = algorithm_module(algo)
    config = algorithm.config_from_preset(preset, seed=seed, total_steps=budget(algo), target_return=TARGET,
                                          log_every_steps=10**9)
    result = algorithm.train(config)
    return result.reached_target_at, result.seconds


def sb3_model(algo: str, env, seed: int):
    """stable-baselines3's counterpart with the rl-zoo CartPole-v1 hyperparameters."""
    from stable_baselines3 import A2C, DQN, PPO

    if algo == "a2c":  # zoo: 8 envs, 5 steps, RMSprop 7e-4, ent 0 (SB3's defaults otherwise)
        return A2C("MlpPolicy", env, ent_coef=0.0, seed=seed, device="cpu", verbose=0)
    if algo == "ppo":
        return PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                   ent_coef=0.0, learning_rate=lambda left: 1e-3 * left, clip_range=lambda left: 0.2 * left,
                   seed=seed, device="cpu", verbose=0)
    return DQN("MlpPolicy", env, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
               gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
               exploration_fraction=0.16, exploration_final_eps=0.04, policy_kwargs={"net_arch": [256, 256]},
               seed=seed, device="cpu", verbose=0)


def run_sb3(seed: int, algo: str) -> tuple[int | None, float]:
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

    env = make_vec_env("CartPole-v1", n_envs=1 if algo in ("pqn", "dqn") else 8, seed=seed)  # zoo DQN: one env
    model = sb3_model(algo, env, seed)
    callback = StopAtTarget()
    start = time.perf_counter()
    model.learn(budget(algo), callback=callback)
    return callback.reached, time.perf_counter() - start


def summary(label: str, runs: list[tuple[int | None, float]]) -> tuple[float, float]:
    steps = [s if s is not None else float("inf") for s, _ in runs]
    seconds = [t for _, t in runs]
    med_steps, med_seconds = statistics.median(steps), statistics.median(seconds)
    print(f"{label:>5}: median {med_steps:,.0f} steps (range {min(steps):,.0f}-{max(steps):,.0f}), "
          f"median {med_seconds:.1f} s (range {min(seconds):.1f}-{max(seconds):.1f})")
    return med_steps, med_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--algo", choices=["a2c", "ppo", "pqn", "dqn"], default="a2c")
    parser.add_argument("--preset", default="cartpole")
    parser.add_argument("--skip-sb3", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # both libraries on one thread: the fastest setting for a small MLP
    ours, theirs = [], []
    for seed in args.seeds:
        ours.append(run_ours(seed, args.algo, args.preset))
        print(f"ours  seed {seed}: {ours[-1][0]} steps, {ours[-1][1]:.1f} s", flush=True)
        if not args.skip_sb3:
            theirs.append(run_sb3(seed, args.algo))
            print(f"sb3   seed {seed}: {theirs[-1][0]} steps, {theirs[-1][1]:.1f} s", flush=True)
    ours_steps, ours_seconds = summary("ours", ours)
    if theirs:
        sb3_steps, sb3_seconds = summary("sb3", theirs)
        print(f"ratio ours/sb3: steps {ours_steps / sb3_steps:.2f}, wall time {ours_seconds / sb3_seconds:.2f}")


if __name__ == "__main__":
    main()
