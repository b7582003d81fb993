"""Minimal edits on the bundled Breakout agent, shown as before / after / difference.

For four real states of the agent's own play where it does not go LEFT: the smallest sparse change
(at most 40 pixels, L1 at most 2,000 grey levels) that makes the agent prefer LEFT. One row per
state: the state before, after the edit (newest frame grey, older frames' bright pixels blue), and
the difference (red: brighter, blue: darker), with the policy's action before and after.

Run: python examples/minimal_edit.py [OUT.png]   (default: ./minimal-edit.png)
"""

import sys

import numpy as np
from PIL import Image, ImageDraw

import interpret_rl
from interpret_rl.atlas_page import motion_rgb
from interpret_rl.methods import build_method
from interpret_rl.pool import real_state_pool
from interpret_rl.targets import chosen_actions, parse_target

ZOOM = 3

agent = interpret_rl.load_agent("breakout-a2c")
pool = real_state_pool(agent, size=1000)
left = agent.action_index("LEFT")
others = (chosen_actions(agent, pool) != left).nonzero().flatten()  # states where the agent does not go LEFT
states = pool[others[::len(others) // 4][:4]]
explanation = build_method("edit", {"pixels": "40", "l1": "2000"}).explain(
    agent, parse_target("action:LEFT", agent), states)
edits = explanation.values


def difference(change: np.ndarray) -> np.ndarray:
    """Summed change over the stacked frames: red brighter, blue darker, white unchanged."""
    total = change.sum(0)
    level = np.clip(np.abs(total) / max(float(np.abs(total).max()), 1.0), 0, 1)[..., None]
    colour = np.where(total[..., None] > 0, [220, 30, 30], [30, 80, 220])
    return (255 * (1 - level) + colour * level).astype(np.uint8)


rows = []
for before, change in zip(states.numpy(), edits.numpy()):
    after = before + change
    row = np.concatenate([motion_rgb(before), np.full((84, 4, 3), 255, np.uint8), motion_rgb(after),
                          np.full((84, 4, 3), 255, np.uint8), difference(change)], 1)
    rows.append(np.kron(row, np.ones((ZOOM, ZOOM, 1), np.uint8)))
    rows.append(np.full((22, rows[-1].shape[1], 3), 255, np.uint8))
image = Image.fromarray(np.concatenate(rows))
draw = ImageDraw.Draw(image)
extras = explanation.extras
for i in range(len(states)):
    y = i * (84 * ZOOM + 22) + 84 * ZOOM + 4
    draw.text((4, y), f"before: {extras['action_before'][i]}   after: {extras['action_after'][i]}   "
                      f"{extras['changed'][i]} pixels, L1 {extras['l1'][i]:.0f}", fill=(0, 0, 0))
out = sys.argv[1] if len(sys.argv) > 1 else "minimal-edit.png"
image.save(out)
print(f"wrote {out}: flipped to LEFT {sum(extras['flipped'])} of {len(states)}")
