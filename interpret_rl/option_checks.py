"""Options that mean the same in every command, checked the same way where they enter.

A value that parses but cannot work (``--seed -1``, ``--lr inf``, ``--device mps``, ``--name ''``)
used to be found out only deep inside the work, sometimes at the first checkpoint save, which lost
the run. Each check here runs while click parses the command line, so a bad value costs one line
and exit code 2 before anything is loaded, trained or written. The checks are keyed by the option's
parameter name and attached to every command as it is looked up (``InterpretRLGroup``), so commands
that other modules or plugins add are covered too.
"""

from __future__ import annotations

import math
import re

import click

# Seeds are offset by the steps trained and the environment index before they reach the games,
# and ALE's vector env takes 32-bit signed seeds: 2**30 leaves room for a billion steps.
MAX_SEED = 2**30 - 1
MAX_LR = 1.0  # a learning rate above 1 is never meant; 1e39 overflows float32 inside the optimizer
DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?")


class OptionError(click.ClickException):
    """A bad option value: one line on stderr, exit code 2 (as ``cli.UserError``)."""

    exit_code = 2


def _fail(param: click.Parameter, value, why: str):
    raise OptionError(f"{param.opts[-1] if param.opts else param.name} {value!r}: {why}")


def check_seed(param, value):
    if not 0 <= value <= MAX_SEED:
        _fail(param, value, f"a seed must be an integer from 0 to {MAX_SEED:,}")


def check_device(param, value):
    if not DEVICE_PATTERN.fullmatch(value):
        _fail(param, value, "use cpu, cuda or cuda:N")
    if value.startswith("cuda"):
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(value.partition(":")[2] or 0)
        if index >= count:
            _fail(param, value, "CUDA is not available on this machine; use --device cpu" if count == 0 else
                  f"this machine has {count} CUDA device(s): cuda:0 to cuda:{count - 1}")


def check_finite(param, value):
    if not math.isfinite(value):
        _fail(param, value, "must be a finite number")


def check_lr(param, value):
    if not (math.isfinite(value) and 0 < value <= MAX_LR):
        _fail(param, value, f"a learning rate must be a finite number above 0 and at most {MAX_LR:g}")


def check_not_negative(param, value):
    if value < 0:
        _fail(param, value, "must be 0 or more")


def check_model_name(param, value):
    from interpret_rl.registry import NAME_PATTERN

    if not NAME_PATTERN.fullmatch(value):
        _fail(param, value, "invalid model name: use 1 to 64 letters, digits, '.', '_' or '-', "
                            "starting with a letter or digit")


def check_env_id(param, value):
    if not value.strip() or value != value.strip():
        _fail(param, value, "give an environment id such as CartPole-v1 or ALE/Breakout-v5")


# parameter name -> check (run on a value that is not None)
CHECKS = {
    "seed": check_seed,
    "device": check_device,
    "lr": check_lr,
    "target_return": check_finite,
    "eval_episodes": check_not_negative,
    "name": check_model_name,
    "env_id": check_env_id,
}


def _checked(check, callback):
    def run(ctx, param, value):
        if value is not None:
            check(param, value)
        return callback(ctx, param, value) if callback is not None else value

    return run


def attach(command: click.Command) -> click.Command:
    """Give ``command``'s options their checks (once; options keep their own callbacks)."""
    if getattr(command, "_interpret_rl_checked", False):
        return command
    for param in command.params:
        check = CHECKS.get(param.name)
        if check is not None and isinstance(param, click.Option) and not param.multiple:
            param.callback = _checked(check, param.callback)
    command._interpret_rl_checked = True
    return command
