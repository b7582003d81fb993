"""Where does a Breakout A2C update's time go? Env stepping, inference, and the update, timed apart.

    python benchmarks/profile_breakout.py [--updates 50]
"""

import argparse
import time

import torch
import torch.nn.functional as F

from interpret_rl.a2c import A2CConfig, a2c_loss, make_optimizer
from interpret_rl.envs import make_vector_env
from interpret_rl.networks import NatureCNNActorCritic


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = A2CConfig(env_id="ALE/Breakout-v5", num_envs=16, n_steps=5)
    envs = make_vector_env(config.env_id, 16)
    net = NatureCNNActorCritic((4, 84, 84), 4).to(memory_format=torch.channels_last)
    opt = make_optimizer(net.parameters(), config)
    obs = torch.as_tensor(envs.reset(seed=0))
    t_env = t_inf = t_upd = 0.0
    obs_buf = torch.zeros((5, 16, 4, 84, 84), dtype=torch.uint8)
    for _ in range(args.updates):
        for t in range(5):
            a = time.perf_counter()
            with torch.no_grad():
                logits, _ = net(obs)
                actions = torch.multinomial(F.softmax(logits, -1), 1)[:, 0]
            b = time.perf_counter()
            result = envs.step(actions.numpy())
            c = time.perf_counter()
            obs_buf[t] = obs
            obs = torch.as_tensor(result.obs)
            t_inf += b - a
            t_env += c - b
        a = time.perf_counter()
        with torch.no_grad():
            net(obs)
        logits, values = net(obs_buf.reshape(80, 4, 84, 84))
        loss, _ = a2c_loss(logits, values, torch.zeros(80, dtype=torch.long), torch.zeros(80),
                           torch.ones(80, dtype=torch.bool), config)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
        opt.step()
        t_upd += time.perf_counter() - a
    steps = args.updates * 80
    total = t_env + t_inf + t_upd
    print(f"steps/s {steps / total:.0f}  env {t_env / total:.0%} ({steps / t_env:.0f} steps/s alone)  "
          f"inference {t_inf / total:.0%}  update {t_upd / total:.0%} ({args.updates / t_upd:.1f} updates/s)")


if __name__ == "__main__":
    main()
