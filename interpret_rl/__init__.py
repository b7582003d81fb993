"""interpret-rl: train A2C agents and compare what explanation methods say they look at."""

from interpret_rl.a2c import PRESETS, A2CConfig, config_from_preset, train
from interpret_rl.agent import Agent
from interpret_rl.compare import compare
from interpret_rl.registry import list_models, load_agent, save_agent

__all__ = ["A2CConfig", "PRESETS", "Agent", "compare", "config_from_preset", "list_models", "load_agent",
           "save_agent", "train"]
__version__ = "0.1.0"
