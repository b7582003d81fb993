"""Where per-agent artefacts live: caches of real states, learned priors.

An artefact belongs to exactly one set of weights (a pool played by other weights is another
pool), so each is keyed by the sha256 of the weights. A user model keeps its artefacts in its own
registry folder; a bundled model's folder is part of the package and read-only, so its artefacts
(and those of agents never saved) go to ``$INTERPRET_RL_HOME/artefacts/<name>-<sha12>``, except
the ones shipped with the package (a bundled prior), read from the bundled folder.
"""

from __future__ import annotations

from pathlib import Path

from interpret_rl import registry


def weights_sha256(agent) -> str:
    """sha256 of ``agent``'s weights serialised as the registry saves them (equal to meta.json's
    record of ``model.safetensors`` for a model loaded and left unchanged)."""
    from safetensors.torch import save

    from interpret_rl.atomic import sha256_bytes

    state = {k: v.detach().to("cpu").contiguous() for k, v in agent.network.state_dict().items()}
    return sha256_bytes(save(state))


def artefact_dirs(agent) -> list[Path]:
    """Folders for artefacts of exactly these weights, the writable one first: the agent's own user
    model folder when its recorded weights are these, else ``$INTERPRET_RL_HOME/artefacts/<name>-<sha12>``;
    then, for a bundled model with these weights, its read-only package folder."""
    sha = weights_sha256(agent)
    own = None
    if agent.name and registry.NAME_PATTERN.match(agent.name):
        try:
            path = registry.resolve(agent.name)
            if registry.read_meta(path)["files"].get(registry.WEIGHTS) == sha:
                own = path
        except (registry.ModelNotFoundError, registry.ModelLoadError):
            pass
    bundled = own is not None and registry.is_bundled(own)  # also through a symlink
    writable = own if own is not None and not bundled else \
        registry.home() / "artefacts" / f"{agent.name or 'agent'}-{sha[:12]}"
    return [writable] + ([own] if bundled else [])
