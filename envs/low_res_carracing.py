"""A low-resolution renderer for Gymnasium's CarRacing-v3: same physics, tracks and rewards, the scene filled
straight at 96x96 (no 1000x800 surface, no smoothscale); frames about one intensity level off CarRacing-v3's on
average, about 14x its steps/s.

It shares :class:`envs.fast_carracing.FastCarRacing`'s geometry cached at reset and its culling, and replaces the
drawing; ``benchmarks/env_speed.py`` measures both against CarRacing-v3.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pygame
from gymnasium.envs.box2d.car_racing import (
    STATE_H,
    STATE_W,
    WINDOW_H,
    WINDOW_W,
)
from pygame import gfxdraw

from envs.fast_carracing import (
    DASHBOARD_H,
    GRASS_SQUARES,
    PLAYFIELD_SQUARE,
    Camera,
    Color,
    FastCarRacing,
    covers,
    reward_text,
)

DASHBOARD_ROWS = STATE_H * DASHBOARD_H // WINDOW_H
"""Observation rows of the dashboard (84-95)."""
COUNTER_COLUMNS = 12
"""Observation columns of the dashboard's left end, which holds the reward counter (window columns 0-124)."""
VIEW_RADIUS = float(np.hypot(WINDOW_W / 2, WINDOW_H * 3 / 4))
"""Window pixels from the car, drawn at (W/2, H/4), to the farthest window corner."""
CAR_SUPERSAMPLING = 4
"""Samples per observation pixel and axis where the car is drawn."""
SMOOTHSCALE_DARKENING = 2
"""Intensity levels CarRacing's smoothscale takes off a uniform area (v -> max(v - 2, 0))."""


def observation_affine(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """(2, 2) matrix and (2,) offset taking world units to continuous 96x96 observation pixels.

    One map for CarRacing's camera, its vertical flip and its 1000x800 -> 96x96 shrink. Observation
    pixel (i, j) spans [i, i + 1) x [j, j + 1); gfxdraw truncates a point to the pixel that holds it.
    """
    zoom, translation, angle = camera
    scale = np.array([STATE_W / WINDOW_W, -STATE_H / WINDOW_H])
    cos, sin = np.cos(angle), np.sin(angle)
    matrix = scale[:, None] * zoom * np.array([[cos, -sin], [sin, cos]])
    offset = scale * (np.asarray(translation) + 0.5) + [0.0, STATE_H]  # window pixel centres
    return matrix, offset


@dataclass(frozen=True)
class CarOutline:
    """One car's hull and wheel polygons in ``Car.draw``'s order, as one array of body-frame vertices.

    The wheels' rotating grey stripes are left out: at 96x96 a wheel is about two pixels.
    """

    car: Any
    vertices: np.ndarray
    """(N, 2) vertices of every polygon, body frame, world units."""
    body_index: np.ndarray
    """(N,) index in ``car.drawlist`` of each vertex's body."""
    slices: list[slice]
    """Each polygon's rows in ``vertices``."""
    colors: list[list[int]]
    """RGB of each polygon."""

    @classmethod
    def of(cls, car: Any) -> CarOutline:
        vertices: list[np.ndarray] = []
        body_index: list[int] = []
        colors: list[list[int]] = []
        for i, body in enumerate(car.drawlist):
            for fixture in body.fixtures:
                vertices.append(np.array(fixture.shape.vertices))
                body_index += [i] * len(vertices[-1])
                colors.append([int(c * 255) for c in body.color])
        ends = np.cumsum([len(polygon) for polygon in vertices]).tolist()
        slices = [slice(end - len(polygon), end) for polygon, end in zip(vertices, ends)]
        return cls(car, np.concatenate(vertices), np.array(body_index), slices, colors)

    def place(self, matrix: np.ndarray, offset: np.ndarray) -> list[np.ndarray]:
        """Each polygon (V, 2) at its body's current pose, mapped by ``points @ matrix.T + offset``."""
        bodies = self.car.drawlist
        angles = np.array([body.angle for body in bodies])[self.body_index]  # (N,)
        positions = np.array([tuple(body.position) for body in bodies])[self.body_index]  # (N, 2)
        cos, sin, (x, y) = np.cos(angles), np.sin(angles), self.vertices.T
        world = np.column_stack([cos * x - sin * y, sin * x + cos * y]) + positions  # (N, 2) world units
        placed = world @ matrix.T + offset
        return [placed[rows] for rows in self.slices]


def coverage(low: np.ndarray, high: np.ndarray, size: int) -> np.ndarray:
    """(B,) intervals [low, high) -> (B, size): the share of each unit pixel [i, i + 1) they cover."""
    pixel = np.arange(size)[None, :]
    overlap = np.minimum(high[:, None], pixel + 1) - np.maximum(low[:, None], pixel)
    return np.minimum(np.maximum(overlap, 0.0), 1.0)


def area_weights(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) box-filter weights: the share of each input pixel in each output pixel."""
    ratio = size_in / size_out
    start = np.arange(size_out) * ratio
    return coverage(start, start + ratio, size_in) / ratio


@functools.lru_cache(maxsize=64)
def small_reward_text(text: str) -> np.ndarray:
    """The dashboard's left end showing ``text``: its window pixels (100 x 125) box-filtered to (12, 12, 3)
    float intensities, once per distinct text (read-only)."""
    width = WINDOW_W * COUNTER_COLUMNS // STATE_W
    left_end = pygame.Surface((width, DASHBOARD_H))
    counter = reward_text(text)
    left_end.blit(counter, counter.get_rect(center=(60, DASHBOARD_H - WINDOW_H * 2.5 / 40.0)))
    pixels = pygame.surfarray.array3d(left_end).transpose(1, 0, 2).astype(np.float64)  # (100, 125, 3)
    rows, columns = area_weights(DASHBOARD_H, DASHBOARD_ROWS), area_weights(width, COUNTER_COLUMNS)
    shrunk_rows = np.tensordot(rows, pixels, axes=(1, 0))  # (12, 125, 3)
    shrunk = np.tensordot(shrunk_rows, columns, axes=(1, 1)).transpose(0, 2, 1)  # (12, 12, 3)
    shrunk.flags.writeable = False
    return shrunk


def indicator_boxes(car: Any) -> tuple[np.ndarray, np.ndarray]:
    """``CarRacing._render_indicators``'s bars (speed, 4 wheel speeds, steering, gyro) at observation
    scale: (7, 4) boxes (x0, x1, y0, y1) in observation pixels, corners in any order, and (7, 3) RGB."""
    s, h, bottom = STATE_W / 40.0, STATE_H / 40.0, float(STATE_H)
    speed = np.hypot(*car.hull.linearVelocity)
    vertical = [(5, 0.02 * speed)] + [(7 + i, 0.01 * wheel.omega) for i, wheel in enumerate(car.wheels)]
    boxes = [(place * s, (place + 1) * s, bottom - h - h * value, bottom - h) for place, value in vertical]
    horizontal = [(20, -10.0 * car.wheels[0].joint.angle), (30, -0.8 * car.hull.angularVelocity)]
    boxes += [(place * s, (place + value) * s, bottom - 4 * h, bottom - 2 * h) for place, value in horizontal]
    colors = [(255, 255, 255), (0, 0, 255), (0, 0, 255), (51, 0, 255), (51, 0, 255), (0, 255, 0), (255, 0, 0)]
    return np.array(boxes), np.array(colors, dtype=np.float64)


def small_dashboard(car: Any, reward: float) -> np.ndarray:
    """The dashboard's (12, 96, 3) uint8 observation rows: reward counter and bars, edges box-filtered.

    Bars are clipped to these rows (CarRacing lets a bar taller than 4 units rise over the road view).
    """
    dashboard = np.zeros((DASHBOARD_ROWS, STATE_W, 3))
    dashboard[:, :COUNTER_COLUMNS] = small_reward_text(f"{reward:04.0f}")
    boxes, colors = indicator_boxes(car)
    (x0, x1), (y0, y1) = np.sort(boxes.reshape(-1, 2, 2), axis=2).transpose(1, 2, 0)  # each (B,)
    top = STATE_H - DASHBOARD_ROWS
    rows, columns = coverage(y0 - top, y1 - top, DASHBOARD_ROWS), coverage(x0, x1, STATE_W)
    shaded_rows = (rows[:, :, None] * colors[:, None, :]).reshape(len(boxes), -1)  # (B, 12 * 3)
    bars = (shaded_rows.T @ columns).reshape(DASHBOARD_ROWS, 3, STATE_W).transpose(0, 2, 1)  # (12, 96, 3)
    return np.minimum(dashboard + bars, 255).astype(np.uint8)


class LowResCarRacing(FastCarRacing):
    """CarRacing-v3 drawn straight at 96x96, ~10x the steps/s: no 1000x800 surface, no smoothscale.

    The scene (background, grass, road) is filled at the observation's scale, the car on a 4x
    supersampled patch, the dashboard with box-filtered edges; frames differ from CarRacing-v3's by
    about one intensity level on average, along edges (``benchmarks/env_speed.py`` measures it).
    ``human`` and ``rgb_array`` render as :class:`FastCarRacing`. Observations: (96, 96, 3) uint8.
    """

    def __init__(
        self,
        render_mode: str | None = None,
        verbose: bool = False,
        lap_complete_percent: float = 0.95,
        domain_randomize: bool = False,
        continuous: bool = True,
    ):
        super().__init__(render_mode, verbose, lap_complete_percent, domain_randomize, continuous)
        self._pixels = np.zeros((STATE_H, STATE_W, 3), np.uint8)
        self._small = pygame.image.frombuffer(self._pixels, (STATE_W, STATE_H), "RGB")  # draws on _pixels
        self._scene = np.empty((0, 4, 2))
        self._scene_centers = np.empty((0, 2))
        self._scene_radii = np.empty(0)
        self._car_outline: CarOutline | None = None

    def _create_track(self) -> bool:
        created = super()._create_track()
        if created:
            self._scene = np.concatenate([GRASS_SQUARES, self._road_polygons])
            self._scene_centers = self._scene.mean(axis=1)
            self._scene_radii = np.linalg.norm(self._scene - self._scene_centers[:, None], axis=2).max(axis=1)
        return created

    def _render(self, mode: str) -> np.ndarray | bool | None:
        """The (96, 96, 3) observation for ``state_pixels``; :class:`FastCarRacing`'s for other modes."""
        if mode != "state_pixels":
            return super()._render(mode)
        if "t" not in self.__dict__:
            return None  # reset() not called yet
        assert self.car is not None
        camera = self._camera()
        matrix, offset = observation_affine(camera)
        self.surf = self._small
        self._fill_background(matrix, offset)
        self._fill_scene(camera[0], matrix, offset)
        self._fill_car(matrix, offset)
        frame = self._pixels.copy()
        frame[-DASHBOARD_ROWS:] = small_dashboard(self.car, self.reward)
        frame -= np.minimum(frame, SMOOTHSCALE_DARKENING)
        return frame

    def _fill_background(self, matrix: np.ndarray, offset: np.ndarray) -> None:
        """Paint the frame black, then the playfield in the background colour."""
        field = PLAYFIELD_SQUARE[0] @ matrix.T + offset  # (4, 2) observation pixels
        if covers(field, STATE_W, STATE_H):
            self.surf.fill(self.bg_color)
        else:
            self.surf.fill((0, 0, 0))
            gfxdraw.filled_polygon(self.surf, field.tolist(), self.bg_color)

    def _fill_scene(self, zoom: float, matrix: np.ndarray, offset: np.ndarray) -> None:
        """Fill the grass and road polygons that reach the road view, in CarRacing's order."""
        assert self.car is not None
        reach = self._scene_radii + VIEW_RADIUS / zoom  # world units
        offsets = self._scene_centers - tuple(self.car.hull.position)  # (P, 2) world units
        near = np.flatnonzero((offsets**2).sum(axis=1) <= reach**2)
        polygons = (self._scene[near].reshape(-1, 2) @ matrix.T + offset).reshape(-1, 4, 2)  # observation px
        low, high = polygons.min(axis=1), polygons.max(axis=1)  # (P', 2)
        inside = (high >= 0).all(axis=1) & (low < (STATE_W, STATE_H - DASHBOARD_ROWS)).all(axis=1)
        for polygon, index in zip(polygons[inside].tolist(), near[inside].tolist()):
            gfxdraw.filled_polygon(self.surf, polygon, self._scene_color(index))

    def _scene_color(self, index: int) -> Color:
        """Colour of ``self._scene[index]``: a grass square or a road polygon."""
        if index < len(GRASS_SQUARES):
            return self.grass_color
        return [int(c) for c in self.road_poly[index - len(GRASS_SQUARES)][1]]

    def _fill_car(self, matrix: np.ndarray, offset: np.ndarray) -> None:
        """Fill the car's polygons on a supersampled copy of the pixels under it, then box-filter it back:
        the car is a few pixels wide, and whole-pixel fills would fatten it."""
        if self._car_outline is None or self._car_outline.car is not self.car:
            self._car_outline = CarOutline.of(self.car)
        polygons = self._car_outline.place(matrix, offset)  # observation pixels
        corners = np.concatenate(polygons)
        x0, y0 = np.maximum(corners.min(axis=0).astype(int), 0).tolist()  # truncation = floor here
        x1, y1 = np.minimum(corners.max(axis=0).astype(int) + 1, (STATE_W, STATE_H)).tolist()
        if x1 <= x0 or y1 <= y0:
            return
        k = CAR_SUPERSAMPLING
        under = self._pixels[y0:y1, x0:x1]  # (h, w, 3) view
        fine = np.ascontiguousarray(under.repeat(k, axis=0).repeat(k, axis=1))  # (h k, w k, 3)
        surface = pygame.image.frombuffer(fine, (fine.shape[1], fine.shape[0]), "RGB")  # draws on fine
        for polygon, color in zip(polygons, self._car_outline.colors):
            gfxdraw.filled_polygon(surface, ((polygon - (x0, y0)) * k).tolist(), color)
        row_sums = fine.astype(np.uint16).reshape(y1 - y0, k, -1).sum(axis=1)  # (h, w k * 3)
        sums = row_sums.reshape(y1 - y0, x1 - x0, k, 3).sum(axis=2)  # (h, w, 3)
        under[...] = (sums + k * k // 2) // (k * k)
