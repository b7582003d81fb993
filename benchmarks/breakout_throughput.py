"""Breakout A2C training throughput: ours against stable-baselines3 A2C on the same settings.

Both: 16 envs x 5 steps, Nature CNN, TF-style RMSprop 7e-4, ent 0.01, vf 0.25, clip 0.5, CPU.
SB3 uses its standard Atari stack (``make_atari_env`` + ``VecFrameStack(4)``); ours uses ale_py's
``AtariVectorEnv``. The runs alternate in one process (median of ``--repeats``) so both see the
same machine load; the env-only rate of AtariVectorEnv (random actions) is printed as the ceiling.

    pip install -e ".[bench]"
    python benchmarks/breakout_throughput.py --steps 16000 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def ours(steps: int) -> float:
    from interpret_rl.a2c import config_from_preset, train

    result = train(config_from_preset("breakout", total_steps=steps, seed=0, log_every_steps=10**9))
    return result.steps / result.seconds


def sb3(steps: int) -> float:
    import ale_py
    import gymnasium as gym
    from stable_baselines3 import A2C
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    env = VecFrameStack(make_atari_env("BreakoutNoFrameskip-v4", n_envs=16, seed=0), n_stack=4)
    model = A2C("CnnPolicy", env, ent_coef=0.01, vf_coef=0.25, seed=0, device="cpu", verbose=0,
                policy_kwargs=dict(optimizer_class=RMSpropTFLike, optimizer_kwargs=dict(eps=1e-5)))
    start = time.perf_counter()
    model.learn(steps)
    seconds = time.perf_counter() - start
    env.close()
    return steps / seconds


def env_only(steps: int) -> float:
    from interpret_rl.envs import make_vector_env

    envs = make_vector_env("ALE/Breakout-v5", 16)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(steps // 16):
        envs.step(rng.integers(0, 4, 16))
    seconds = time.perf_counter() - start
    envs.close()
    return steps / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(len(__import__("os").sched_getaffinity(0)))
    rates = {"ours": [], "sb3": [], "env only": []}
    for repeat in range(args.repeats):
        for name, fn in (("ours", ours), ("sb3", sb3), ("env only", env_only)):
            rates[name].append(fn(args.steps))
            print(f"repeat {repeat}: {name:8s} {rates[name][-1]:7.0f} steps/s", flush=True)
    median = {k: statistics.median(v) for k, v in rates.items()}
    print(f"median steps/s: ours {median['ours']:.0f}, sb3 {median['sb3']:.0f}, "
          f"env only {median['env only']:.0f}")
    print(f"ratio ours/sb3: {median['ours'] / median['sb3']:.2f}; "
          f"ours reaches {median['ours'] / median['env only']:.0%} of the env-only rate")


if __name__ == "__main__":
    main()
