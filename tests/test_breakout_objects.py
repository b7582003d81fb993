"""Breakout's RAM facts checked against rendered frames of real play (the bundled agent), the brick
bit table against the emulator, and interventions against the frames they make."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from interpret_rl.atari_game import AtariGame
from interpret_rl.objects import box_to_mask, detector_for
from interpret_rl_plugins import breakout_objects as bo

RED = np.array([200, 72, 72])  # ball and paddle colour (also the top brick row and a wall corner)
PLAY_ROWS = slice(93, 189)  # between the bricks and the paddle: red there is the ball
CORNER_X = 152  # columns 152-159 of rows 189-194 are a red wall corner, not the paddle


def inside(pixels: np.ndarray, box) -> np.ndarray:
    y0, x0, y1, x1 = box
    return (pixels[:, 0] >= y0) & (pixels[:, 0] < y1) & (pixels[:, 1] >= x0) & (pixels[:, 1] < x1)


@pytest.fixture(scope="module")
def agent():
    from interpret_rl import registry

    return registry.load_agent("breakout-a2c")


@pytest.mark.slow
def test_ball_and_paddle_boxes_hold_their_pixels_on_600_frames(agent):
    """Play 600 steps with the bundled agent; on the last raw frame of every step the ball box
    holds every ball pixel whenever the ball is drawn, and the paddle box every paddle pixel."""
    detector = detector_for("ALE/Breakout-v5")
    game = AtariGame(agent.env_id, agent.env_settings, seed=3)
    obs = game.reset()
    generator = torch.Generator().manual_seed(3)
    counts = {"ball_drawn": 0, "ball_drawn_in_box": 0, "ball_box_without_pixels": 0,
              "paddle_drawn": 0, "paddle_drawn_in_box": 0, "paddle_fills_box": 0}
    frames, score = 600, 0.0
    for _ in range(frames):
        info = game.step(int(agent.act(obs[None], generator=generator)[0]))
        obs = game.observation()
        score += info.reward
        if info.game_over:
            obs, score = game.reset(), 0.0
            continue
        rgb, ram = game.render_rgb(), game.ale.getRAM()
        assert bo.score(ram) == score and int(ram[bo.LIVES]) == game.ale.lives()  # the HUD's numbers
        boxes = detector.boxes(ram)
        red = np.argwhere((rgb == RED).all(-1))
        ball = red[(red[:, 0] >= PLAY_ROWS.start) & (red[:, 0] < PLAY_ROWS.stop) & (red[:, 1] >= 8) & (red[:, 1] < 152)]
        if len(ball):
            counts["ball_drawn"] += 1
            counts["ball_drawn_in_box"] += bool(boxes["ball"]) and inside(ball, boxes["ball"][0]).all()
        elif boxes["ball"] and PLAY_ROWS.start <= boxes["ball"][0][0] and boxes["ball"][0][2] <= PLAY_ROWS.stop:
            counts["ball_box_without_pixels"] += 1
        paddle = red[(red[:, 0] >= 189) & (red[:, 0] < 193) & (red[:, 1] < CORNER_X)]
        (box,) = boxes["paddle"]
        counts["paddle_drawn"] += len(paddle) > 0
        counts["paddle_drawn_in_box"] += len(paddle) > 0 and inside(paddle, box).all()
        counts["paddle_fills_box"] += box[3] > CORNER_X or (len(paddle) and paddle[:, 1].min() == box[1]
                                                            and paddle[:, 1].max() == box[3] - 1)
    assert counts["ball_drawn"] > frames // 2, counts  # the test saw the ball in play most of the time
    assert counts["ball_drawn_in_box"] == counts["ball_drawn"], counts
    assert counts["ball_box_without_pixels"] == 0, counts
    assert counts["paddle_drawn"] > frames * 0.9, counts  # hidden only when it sits in the wall corner
    assert counts["paddle_drawn_in_box"] == counts["paddle_drawn"] and counts["paddle_fills_box"] == frames, counts


def test_the_paddle_box_narrows_with_the_paddle():
    """After the ball breaks through to the top wall (RAM[97] bit 7) the paddle is drawn 12 px
    wide, and so is its box."""
    game = AtariGame("ALE/Breakout-v5", seed=0)
    game.reset(5)
    widths = []
    for flag in (0, 128):
        for _ in range(8):
            game.ale.setRAM(97, flag)
            game.ale.act(game.actions[0])
        red = np.argwhere((game.render_rgb()[189:193, :CORNER_X] == RED).all(-1))
        (box,) = bo.BreakoutDetector().boxes(game.ale.getRAM())["paddle"]
        assert (red[:, 1].min(), red[:, 1].max() + 1) == (box[1], box[3])
        widths.append(box[3] - box[1])
    assert widths == [16, 12]


def test_brick_bit_table_matches_the_emulator():
    """Clearing each table bit on a full wall removes exactly its brick; other bits remove none."""
    game = AtariGame("ALE/Breakout-v5", seed=0)
    game.reset(5)
    for _ in range(20):  # right after reset the game is still writing the wall
        game.step(0)
    state = game.save_state()

    def drawn_bricks():
        rgb = game.render_rgb()
        return np.array([[rgb[bo.BRICK_TOP + 6 * r + 2, bo.BRICK_LEFT + 8 * c + 3].any() for c in range(18)]
                         for r in range(6)])

    game.ale.act(game.actions[0])
    assert drawn_bricks().all() and bo.brick_grid(game.ale.getRAM()).all()
    table = {(bo.brick_byte(g, r), bit): (r, c) for g, bits in bo.BRICK_BITS.items() for bit, c in bits.items()
             for r in range(6)}
    for byte in range(36):
        for bit in range(8):
            game.restore_state(state)
            game.ale.setRAM(byte, int(game.ale.getRAM()[byte]) & ~(1 << bit) & 0xFF)
            game.ale.act(game.actions[0])
            gone = [tuple(rc) for rc in np.argwhere(~drawn_bricks()).tolist()]
            assert gone == ([table[(byte, bit)]] if (byte, bit) in table else []), (byte, bit, gone)
            assert [tuple(rc) for rc in np.argwhere(~bo.brick_grid(game.ale.getRAM())).tolist()] == gone


def test_box_to_mask_is_the_footprint_of_the_resize():
    """A white box in a black raw frame lights exactly the mask's pixels after INTER_AREA resizing."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        y, x = int(rng.integers(0, 205)), int(rng.integers(0, 155))
        box = (y, x, y + int(rng.integers(1, 6)), x + int(rng.integers(1, 17)))
        raw = np.zeros((210, 160), np.uint8)
        raw[box[0]:box[2], box[1]:box[3]] = 255
        lit = cv2.resize(raw, (84, 84), interpolation=cv2.INTER_AREA) > 0
        assert np.array_equal(lit, box_to_mask(box, (210, 160), (84, 84))), box
