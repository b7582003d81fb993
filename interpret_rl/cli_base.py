"""What every ``interpret-rl`` command module shares: the ``cli`` group, the user-error rules
(one line, exit 2) and the small option callbacks. Command modules import this module, and
``interpret_rl.cli`` imports them, so no two command modules import each other."""

from __future__ import annotations

import contextlib
import errno
import sys

import click

from interpret_rl import registry


class UserError(click.ClickException):
    """A mistake in what the user asked for: one line on stderr, exit code 2."""

    exit_code = 2


# "You asked for something that does not exist or cannot be", by the module that defines it.
USER_ERRORS = {
    "interpret_rl.registry": ("ModelNotFoundError", "ModelLoadError", "InvalidNameError"),
    "interpret_rl.names": ("UnknownNameError",),
    "interpret_rl.rollout": ("InvalidConfigError",),
    "interpret_rl.envs": ("UnknownEnvError", "UnsupportedSpaceError", "MissingDependencyError"),
    "interpret_rl.targets": ("TargetError",),
    "interpret_rl.architectures": ("ArchitectureArgsError",),
    "interpret_rl.limits": ("TooLargeError",),  # above a limit, or a limit's variable not a number
}


def user_errors() -> tuple[type[BaseException], ...]:
    """The error classes of ``USER_ERRORS`` whose modules are loaded: an error of a module never
    imported cannot have been raised, and importing it here would cost seconds (torch) on the
    way to a one-line message."""
    return tuple(getattr(sys.modules[module], name) for module, names in USER_ERRORS.items()
                 if module in sys.modules for name in names)


@contextlib.contextmanager
def bad_request_is_a_user_error():
    """Inside the block a ``ValueError`` from checking the request becomes one line and exit 2."""
    try:
        yield
    except ValueError as err:
        if isinstance(err, user_errors()):
            raise  # InterpretRLGroup already turns these into exit 2
        raise UserError(str(err)) from None


# A full, read-only or forbidden destination is the machine's state, not a bug: one line, exit 1.
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
               errno.EEXIST, errno.ENOTDIR, errno.EISDIR)  # the last three: a file where a folder must be


class InterpretRLGroup(click.Group):
    """Turns the library's "you asked for something that does not exist" errors into exit code 2,
    and a full or read-only disk into one line (every write is atomic: the previous file is kept)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except user_errors() as err:
            raise UserError(str(err)) from None
        except OSError as err:
            if err.errno not in DISK_ERRNOS:
                raise
            raise click.ClickException(f"cannot write {err.filename or 'a file'}: {err.strerror} "
                                       f"(what was there before is kept)") from None

    def get_command(self, ctx, name):
        from interpret_rl.option_checks import attach  # --seed, --device, --lr... checked as parsed

        command = super().get_command(ctx, name)
        if command is None and add_plugin_commands(self):  # a name of ours needs no plugin loaded
            command = super().get_command(ctx, name)
        return attach(command) if command is not None else None

    def list_commands(self, ctx):
        add_plugin_commands(self)  # --help lists plugin commands too
        return super().list_commands(ctx)


_plugin_commands_added = False


def add_plugin_commands(group: click.Group) -> bool:
    """Let plugins add their commands (``register_commands``), once; True the first time.

    Loading plugins imports their modules, so it waits until a command that is not built in is
    asked for, or the list of commands: a built-in command, e.g. ``models``, starts without them.
    """
    global _plugin_commands_added
    if _plugin_commands_added:
        return False
    from interpret_rl.plugin_manager import get_plugin_manager

    _plugin_commands_added = True
    get_plugin_manager().hook.register_commands(cli=group)
    return True


def hold_writer_lock(path) -> None:
    """Be the only process writing model folder ``path`` until this command ends."""
    click.get_current_context().with_resource(registry.writer_lock(path))


@click.group(cls=InterpretRLGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="interpret-rl")
def cli():
    """Train RL agents (A2C, PPO, PQN, DQN; or import SB3 / CleanRL ones) and see what they look at: explanation
    methods side by side, judged against the game's ground truth."""


def positive(ctx, param, value):
    if value is not None and value <= 0:
        raise click.BadParameter(f"must be positive, got {value}")
    return value


def comma_list(ctx, param, value):
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise click.BadParameter("give at least one name")
    return items


def check_device(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
