"""PPO training steps per second: ours against stable-baselines3's PPO with the same settings.

CartPole-v1 with the rl-zoo settings (our preset ``cartpole``: 8 envs x 32 steps, 20 epochs of one
256 batch, separate 64x64 tanh actor and critic; torch on one thread for both, the fastest for a
small MLP) and, unless ``--skip-breakout``, Breakout with CleanRL's ppo_atari settings (our preset
``breakout``: 8 envs x 128 steps, 4 epochs x 4 minibatches, Nature CNN, clipped value loss; SB3's
CnnPolicy on ``make_atari_env`` + ``VecFrameStack(4)``; torch on all cores for both). The runs
alternate in one process, repeat by repeat, so machine load affects both; the ratio is of the
medians. Both time the training loop only (env creation and imports excluded).

    pip install -e ".[bench]"
    python benchmarks/ppo_vs_sb3_speed.py --cartpole-steps 16384 --breakout-steps 2048 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch


def ours(env: str, steps: int) -> float:
    from interpret_rl.ppo import config_from_preset, train

    # The rollout sets torch's threads itself: 1 for vector observations, all cores for frames.
    result = train(config_from_preset(env, total_steps=steps, seed=0, log_every_steps=10**9))
    return result.steps / result.seconds


def linear(start: float):
    return lambda progress_remaining: start * progress_remaining


def sb3_cartpole(steps: int) -> float:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    env = make_vec_env("CartPole-v1", n_envs=8, seed=0)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                ent_coef=0.0, learning_rate=linear(1e-3), clip_range=linear(0.2), seed=0, device="cpu", verbose=0)
    return _timed_learn(model, steps)


def sb3_breakout(steps: int) -> float:
    import ale_py
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    gym.register_envs(ale_py)
    env = VecFrameStack(make_atari_env("BreakoutNoFrameskip-v4", n_envs=8, seed=0), n_stack=4)
    model = PPO("CnnPolicy", env, n_steps=128, batch_size=256, n_epochs=4, gamma=0.99, gae_lambda=0.95,
                learning_rate=linear(2.5e-4), clip_range=linear(0.1), clip_range_vf=linear(0.1), ent_coef=0.01,
                vf_coef=0.5, max_grad_norm=0.5, seed=0, device="cpu", verbose=0)
    return _timed_learn(model, steps)


def _timed_learn(model, steps: int) -> float:
    start = time.perf_counter()
    model.learn(steps)
    seconds = time.perf_counter() - start
    model.get_env().close()
    return model.num_timesteps / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cartpole-steps", type=int, default=16_384)
    parser.add_argument("--breakout-steps", type=int, default=2_048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-breakout", action="store_true")
    args = parser.parse_args()
    cases = [("cartpole", args.cartpole_steps, sb3_cartpole)]
    if not args.skip_breakout:
        cases.append(("breakout", args.breakout_steps, sb3_breakout))
    for env, steps, sb3 in cases:
        rates: dict[str, list[float]] = {"ours": [], "sb3": []}
        for repeat in range(args.repeats):
            for name in ("ours", "sb3"):
                rates[name].append(ours(env, steps) if name == "ours" else sb3(steps))
                print(f"{env} repeat {repeat}: {name:4s} {rates[name][-1]:7.0f} steps/s", flush=True)
        median = {name: statistics.median(values) for name, values in rates.items()}
        per_repeat = ", ".join(f"{o / s:.2f}" for o, s in zip(rates["ours"], rates["sb3"]))
        print(f"{env}: median steps/s ours {median['ours']:.0f}, sb3 {median['sb3']:.0f}; "
              f"ratio ours/sb3 {median['ours'] / median['sb3']:.2f} (per repeat {per_repeat})", flush=True)


if __name__ == "__main__":
    main()
