"""FlashOmni Python layer: the Update–Dispatch schedule (which step is an update, a dispatch or a
reuse step) and the Lagrange weights of the Taylor forecast; mirrors engine.h (Schedule,
TaylorForecast). Used by flashomni.engine, which re-exports these names.
"""

import dataclasses
import enum


class StepKind(enum.IntEnum):
    UPDATE = 0  # dense attention; the policy chooses new symbols; the forecast gets a point
    DISPATCH = 1  # sparse work over active blocks; cached heads' share is the forecast of C
    REUSE = 2  # whole-layer reuse: the output is the forecast, no attention at all


def step_kind_name(kind):
    return StepKind(kind).name.lower()


@dataclasses.dataclass
class ScheduleConfig:
    num_steps: int = 50  # S
    warmup: int = 8  # W: steps 0..W-1 are updates
    interval: int = 5  # N: after warm-up, an update every N steps
    last_dense: bool = True  # step S-1 is an update


class Schedule:
    """Update steps: s < max(W, 1); (s - max(W - 1, 0)) % N == 0; S - 1 when last_dense.
    Defaults (S = 50, W = 8, N = 5): updates 0..7, 12, 17, ..., 47, 49 (17 updates, 33
    dispatches), the C++ Schedule's rule."""

    def __init__(self, config=None):
        self.config = config or ScheduleConfig()
        c = self.config
        for name, value, low in (("num_steps", c.num_steps, 1), ("warmup", c.warmup, 0),
                                 ("interval", c.interval, 1)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"argument 'schedule.{name}': expected an int >= {low}, got "
                                 f"{value!r}")

    def step_kind(self, step):
        c = self.config
        if not 0 <= step < c.num_steps:
            raise ValueError(f"argument 'step': expected in [0, {c.num_steps}), got {step}")
        if step < max(c.warmup, 1) or (step - max(c.warmup - 1, 0)) % c.interval == 0:
            return StepKind.UPDATE
        if c.last_dense and step == c.num_steps - 1:
            return StepKind.UPDATE
        return StepKind.DISPATCH

    def update_steps(self):
        return [s for s in range(self.config.num_steps) if self.step_kind(s) == StepKind.UPDATE]

    def num_updates(self):
        return len(self.update_steps())


def taylor_weights(point_steps, step):
    """Lagrange weights w_p = prod_{m != p} (step - t_m) / (t_p - t_m), oldest point first: the
    polynomial through the points, evaluated at `step`, is sum_p w_p value_p (a Taylor series
    about the last point with divided-difference derivatives, exact for uneven spacing). E.g.
    points 7, 12, 17 at step 18 give (0.12, -0.44, 1.32)."""
    t = [int(s) for s in point_steps]
    if not t or len(set(t)) != len(t):
        raise ValueError(f"argument 'point_steps': expected distinct steps, got {t}")
    w = []
    for p, tp in enumerate(t):
        x = 1.0
        for m, tm in enumerate(t):
            if m != p:
                x *= (step - tm) / (tp - tm)
        w.append(x)
    return w
