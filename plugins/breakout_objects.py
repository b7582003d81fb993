"""Breakout's objects from RAM, and interventions that move them (ale-py 0.12.1, ``breakout.bin``).

Each fact below was measured on rendered frames (tests/test_breakout_objects.py re-checks them on
real play); coordinates are raw frame pixels (210 rows x 160 columns), boxes end-exclusive.

* Ball: 2x4 px at x = RAM[99] - 49, y = RAM[101] + 9; not on screen while RAM[101] is 0 or
  y > 196 (a missed ball falling out); the same facts as OC_Atari's ``ocatari/ram/breakout.py``.
* Paddle: rows 189-192, x = RAM[72] - 47, 2 * RAM[108] px wide: 16, and 12 once the ball has
  broken through to the top wall (RAM[97] bit 7; OC_Atari draws it 16 wide always). The game
  eases RAM[72] toward the paddle controller every frame (halving the distance), so a RAM write
  alone lasts one frame: the paddle intervention re-pins it before every frame.
* Bricks: 6 rows of 18 bricks, 8x6 px, row r (0 = top) at y = 57 + 6 r, column c at x = 8 + 8 c.
  Brick (r, c) is one bit of RAM[6 g + 5 - r] for a byte group g = 0..5; ``BRICK_BITS`` says which
  bit of which group is which column. Measured by clearing each of the 288 bits of RAM[0:36] on a
  full wall: 108 bits each removed exactly one brick, the other 180 none.
* HUD: score and lives digits in rows 5-14, x 36-139 (gray); score BCD in RAM[76] (hundreds) and
  RAM[77]; lives RAM[57].
* Walls: static gray (142): the top wall rows 17-31 across, the side walls x 0-7 and 152-159 from
  row 17 to 195 (measured on the first frame after a reset). They carry no information, which is
  why they are scored: perturbation saliency's peak lands on a blurred wall edge in most states of
  breakout-a2c (benchmarks/README.md), and only a wall object makes that visible.
"""

from __future__ import annotations

from interpret_rl.hookspecs import hookimpl
from interpret_rl.lazy import lazy_module
from interpret_rl.objects import Box, Intervention, ObjectDetector

np = lazy_module("numpy")

BALL_X, BALL_Y, PADDLE_X, PADDLE_HALF_WIDTH, LIVES, SCORE_HIGH, SCORE_LOW = 99, 101, 72, 108, 57, 76, 77
PADDLE_ROW, PADDLE_HEIGHT, BALL_SIZE = 189, 4, (4, 2)
BRICK_TOP, BRICK_LEFT, BRICK_SIZE, ROWS, COLUMNS = 57, 8, (6, 8), 6, 18
HUD_BOX: Box = (5, 36, 15, 140)
WALL_BOXES: tuple[Box, ...] = ((17, 0, 32, 160), (32, 0, 196, 8), (32, 152, 196, 160))  # top, left, right
# byte group g (RAM[6 g : 6 g + 6], one byte per row) -> {bit: brick column}
BRICK_BITS = {
    0: {0: 15, 2: 16, 4: 17},
    1: {1: 14, 3: 13, 5: 12, 7: 11},
    2: {4: 9, 6: 10},
    3: {0: 5, 2: 6, 4: 7, 6: 8},
    4: {1: 4, 3: 3, 5: 2, 7: 1},
    5: {6: 0},
}
ROW_NAMES = tuple(f"bricks row {r + 1}" for r in range(ROWS))
BALL_LOWEST = 196  # lowest ball row still in the field (OC_Atari's bound; tested on real play)
SHIFT = 30  # pixels an intervention moves the ball or the paddle (towards the middle of the field)


def brick_byte(group: int, row: int) -> int:
    return 6 * group + ROWS - 1 - row


def brick_grid(ram: np.ndarray) -> np.ndarray:
    """``(6, 18)`` bool: which bricks stand (row 0 at the top)."""
    grid = np.zeros((ROWS, COLUMNS), dtype=bool)
    for group, bits in BRICK_BITS.items():
        for row in range(ROWS):
            byte = int(ram[brick_byte(group, row)])
            for bit, column in bits.items():
                grid[row, column] = bool(byte >> bit & 1)
    return grid


def ball_on_screen(ram: np.ndarray) -> bool:
    """RAM[101] is 0 while no ball is in play; past row 196 a missed ball has left the field."""
    return 0 < int(ram[BALL_Y]) and int(ram[BALL_Y]) + 9 <= BALL_LOWEST


def score(ram: np.ndarray) -> int:
    def bcd(v: int) -> int:
        return (v >> 4) * 10 + (v & 15)

    return 100 * bcd(int(ram[SCORE_HIGH])) + bcd(int(ram[SCORE_LOW]))


class MoveBall(Intervention):
    """Shift the ball sideways once, before the first frame; the game moves it on from there."""

    obj = "ball"

    def __init__(self, dx: int):
        self.dx = dx
        self.description = f"ball moved {dx:+d} px sideways"

    def before_frame(self, ale, frame, action, clean_ram):
        if frame == 0:
            ale.setRAM(BALL_X, int(ale.getRAM()[BALL_X]) + self.dx)


class MovePaddle(Intervention):
    """Keep the paddle ``dx`` px beside where it is without intervention, in every frame.

    The game eases RAM[72] toward the controller each frame, so the value written is searched
    (a few trial frames, undone) until the frame ends with the paddle where it should be."""

    obj = "paddle"

    def __init__(self, dx: int):
        self.dx = dx
        self.description = f"paddle held {dx:+d} px sideways"

    def before_frame(self, ale, frame, action, clean_ram):
        wanted = int(clean_ram[PADDLE_X]) + self.dx
        write = wanted
        saved = ale.cloneState()
        for _ in range(6):
            ale.setRAM(PADDLE_X, int(np.clip(write, 0, 255)))
            ale.act(action)
            reached = int(ale.getRAM()[PADDLE_X])
            ale.restoreState(saved)
            if reached == wanted:
                break
            write += 2 * (wanted - reached)  # the game moves halfway toward the controller
        ale.setRAM(PADDLE_X, int(np.clip(write, 0, 255)))


class RemoveBrickRow(Intervention):
    """Clear every brick of one row (kept cleared in every frame)."""

    def __init__(self, row: int):
        self.row = row
        self.obj = ROW_NAMES[row]
        self.description = f"brick row {row + 1} (from the top) removed"

    def before_frame(self, ale, frame, action, clean_ram):
        # whole bytes: the bits outside BRICK_BITS draw the seams between bricks, which would
        # stay behind as a dotted line
        for group in BRICK_BITS:
            ale.setRAM(brick_byte(group, self.row), 0)


class ChangeScore(Intervention):
    """Show another score (+50 points) from the first frame on."""

    obj = "hud"
    description = "score shown 50 points higher"

    def before_frame(self, ale, frame, action, clean_ram):
        if frame == 0:
            value = score(ale.getRAM()) + 50
            ale.setRAM(SCORE_HIGH, (value // 1000 % 10) << 4 | value // 100 % 10)
            ale.setRAM(SCORE_LOW, (value // 10 % 10) << 4 | value % 10)


class BreakoutDetector(ObjectDetector):
    objects = ("ball", "paddle", "bricks", *ROW_NAMES, "hud", "walls")
    main_objects = ("ball", "paddle", "bricks", "hud", "walls")
    pointing_objects = ("ball", "paddle")

    def boxes(self, ram: np.ndarray) -> dict[str, list[Box]]:
        found: dict[str, list[Box]] = {name: [] for name in self.objects}
        if ball_on_screen(ram):
            x, y = int(ram[BALL_X]) - 49, int(ram[BALL_Y]) + 9
            found["ball"].append((y, x, y + BALL_SIZE[0], x + BALL_SIZE[1]))
        x = int(ram[PADDLE_X]) - 47
        found["paddle"].append((PADDLE_ROW, x, PADDLE_ROW + PADDLE_HEIGHT, x + 2 * int(ram[PADDLE_HALF_WIDTH])))
        for row, column in np.argwhere(brick_grid(ram)).tolist():
            y, x = BRICK_TOP + BRICK_SIZE[0] * row, BRICK_LEFT + BRICK_SIZE[1] * column
            box = (y, x, y + BRICK_SIZE[0], x + BRICK_SIZE[1])
            found[ROW_NAMES[row]].append(box)
            found["bricks"].append(box)
        found["hud"].append(HUD_BOX)
        found["walls"].extend(WALL_BOXES)
        return found

    def interventions(self, ram: np.ndarray) -> list[Intervention]:
        towards_middle = (lambda x: SHIFT if x < 80 else -SHIFT)
        found: list[Intervention] = []
        if ball_on_screen(ram):
            found.append(MoveBall(towards_middle(int(ram[BALL_X]) - 49)))
        found.append(MovePaddle(towards_middle(int(ram[PADDLE_X]) - 47 + 8)))
        grid = brick_grid(ram)
        found.extend(RemoveBrickRow(row) for row in range(ROWS) if grid[row].any())
        found.append(ChangeScore())
        return found

    def describe(self, ram: np.ndarray) -> dict:
        return {"lives": int(ram[LIVES]), "score": score(ram), "bricks_left": int(brick_grid(ram).sum())}


@hookimpl
def register_object_detectors(register):
    register("breakout", BreakoutDetector)
