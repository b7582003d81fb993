"""What is installed: ``interpret-rl plugins``, ``methods`` and ``metrics``."""

from __future__ import annotations

import dataclasses

import click

from interpret_rl.cli_base import cli


def _echo_table(rows: list[tuple[str, ...]], details: list[str | None] | None = None) -> None:
    """Columns padded to their widest cell (the last one is left ragged); ``details[i]``, when
    given, is printed indented under row ``i + 1`` (row 0 is the header)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for index, row in enumerate(rows):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
        if details and index > 0 and details[index - 1]:
            click.echo(f"    {details[index - 1]}")


def _options_line(entry) -> str:
    fields = [f"{f.name}={f.default!r}" for f in dataclasses.fields(entry.Options)]
    return f"options: {', '.join(fields) or 'none'}"


@cli.command(name="methods")
@click.option("-v", "--verbose", is_flag=True, help="Also list each method's options with their defaults.")
def methods_command(verbose):
    """List the registered explanation methods: name, kind, plugin, description."""
    from interpret_rl.methods import METHODS

    methods, owners = METHODS.collect()
    rows = [("NAME", "KIND", "PLUGIN", "DESCRIPTION")]
    rows += [(name, method.kind, owners[name], method.description) for name, method in methods.items()]
    _echo_table(rows, [_options_line(m) for m in methods.values()] if verbose else None)


@cli.command(name="metrics")
@click.option("-v", "--verbose", is_flag=True, help="Also list each metric's options with their defaults.")
def metrics_command(verbose):
    """List the registered metrics: name, what they score, which way is better, plugin, description."""
    from interpret_rl.metrics import METRICS

    metrics, owners = METRICS.collect()
    better = {True: "higher", False: "lower", None: "-"}
    rows = [("NAME", "SCORES", "BETTER", "PLUGIN", "DESCRIPTION")]
    rows += [(name, ",".join(sorted(metric.applies_to)), better[metric.higher_is_better], owners[name],
              metric.description) for name, metric in metrics.items()]
    _echo_table(rows, [_options_line(m) for m in metrics.values()] if verbose else None)


@cli.command(name="plugins")
def plugins_command():
    """List the plugins: where each comes from, the hooks it implements, or why it failed to load."""
    from interpret_rl.plugin_manager import describe_plugins

    rows = [("NAME", "SOURCE", "HOOKS")]
    for plugin in describe_plugins():
        hooks = ", ".join(plugin["hooks"]) if plugin["error"] is None else f"FAILED: {plugin['error']}"
        rows.append((plugin["name"], plugin["source"], hooks))
    _echo_table(rows)
