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


def check_observation_limit(param, value):
    from interpret_rl.limits import MAX_OBSERVATIONS_ENV, max_observations

    if value > max_observations():
        _fail(param, value, f"at most {max_observations():,} observations (set {MAX_OBSERVATIONS_ENV} to allow more)")


# parameter name -> check (run on a value that is not None)
CHECKS = {
    "seed": check_seed,
    "device": check_device,
    "lr": check_lr,
    "target_return": check_finite,
    "eval_episodes": check_not_negative,
    "name": check_model_name,
    "env_id": check_env_id,
    "frames": check_observation_limit,  # compare: observations to explain
    "states": check_observation_limit,  # atlas: states to collect
}


def _checked(check, callback):
    def run(ctx, param, value):
        if value is not None:
            check(param, value)
        return callback(ctx, param, value) if callback is not None else value

    return run


# Checks by type, for every option and argument of every command: an integer so large that it
# overflows inside torch or numpy (2**64 steps, episodes, threads) or an empty name, path or list
# (``--out ''``, ``--resume ''``) is never meant, whatever the parameter.
MAX_INT_VALUE = 2**31 - 1


def check_int_size(param, value):
    if not -MAX_INT_VALUE <= value <= MAX_INT_VALUE:
        _fail(param, value, f"must be at most {MAX_INT_VALUE:,} in size")


def check_not_empty(param, value):
    if not value.strip():
        _fail(param, value, "must not be empty")


def _type_check(param: click.Parameter):
    if isinstance(param.type, (click.types.IntParamType, click.IntRange)):
        return check_int_size
    if isinstance(param.type, (click.types.StringParamType, click.Path)):
        return check_not_empty
    return None


def _all_of(*checks):
    checks = [check for check in checks if check is not None]

    def check_each(param, value):
        for item in value if isinstance(value, tuple) else (value,):
            for check in checks:
                check(param, item)

    return check_each


def attach(command: click.Command) -> click.Command:
    """Give ``command``'s parameters their checks (once; they keep their own callbacks)."""
    if getattr(command, "_interpret_rl_checked", False):
        return command
    for param in command.params:
        by_name = CHECKS.get(param.name) if isinstance(param, click.Option) and not param.multiple else None
        by_type = _type_check(param)
        if by_name is not None or by_type is not None:
            param.callback = _checked(_all_of(by_type, by_name), param.callback)
    command._interpret_rl_checked = True
    for sub in getattr(command, "commands", {}).values():  # a group's commands (prior train, prior show)
        attach(sub)
    return command


# --- Options of methods and metrics (-o NAME.FIELD=VALUE) ------------------------------------
# An Options field declares the values that make sense with ``bounded``; ``build_options`` checks
# every value given against the declaration while the request is read, so ``optim.steps=0`` or
# ``saliency.noise=nan`` is one line and exit 2 instead of a report full of failures.

MAX_COPIES = 10_000  # options that allocate this many copies of an observation (samples, batches)


def bounded(default, *, at_least=None, above=None, at_most=None, below=None):
    """An ``Options`` field with ``default`` whose values must lie in the declared range (a tuple
    option: each of its items). Every float option must in any case be finite and every int at
    most ``MAX_INT_VALUE``; ``bounded`` adds what the option itself needs (``steps`` at least 1)."""
    import dataclasses

    limits = {"at least": at_least, "above": above, "at most": at_most, "below": below}
    return dataclasses.field(default=default, metadata={"bounds": {k: v for k, v in limits.items() if v is not None}})


_HOLDS = {"at least": lambda v, b: v >= b, "above": lambda v, b: v > b,
          "at most": lambda v, b: v <= b, "below": lambda v, b: v < b}


def check_option_value(label: str, value, field) -> None:
    """Raise ``ValueError`` (one line naming ``label``, e.g. ``optim.steps``) unless ``value``
    is finite, fits an int, and lies in the range ``field`` declares through ``bounded``."""
    items = value if isinstance(value, tuple) else (value,)
    bounds = field.metadata.get("bounds", {})
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            continue
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"option {label}={item!r}: must be a finite number")
        if isinstance(item, int) and abs(item) > MAX_INT_VALUE:
            raise ValueError(f"option {label}={item!r}: must be at most {MAX_INT_VALUE:,} in size")
        if not all(_HOLDS[word](item, bound) for word, bound in bounds.items()):
            wanted = " and ".join(f"{word} {bound:,}" if isinstance(bound, int) else f"{word} {bound:g}"
                                  for word, bound in bounds.items())
            raise ValueError(f"option {label}={item!r}: must be {wanted}")
