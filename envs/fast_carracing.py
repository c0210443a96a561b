"""Faster renderers for Gymnasium's CarRacing-v3: same physics, tracks and rewards, (96, 96, 3) uint8 frames.

CarRacing-v3 spends ~95% of a step drawing: every frame it rotates and culls ~800 grass and road polygons
one Python vertex at a time, draws them on a fresh 1000x800 surface, flips it, loads its font from disk
and shrinks the surface to 96x96 with ``smoothscale``. :class:`FastCarRacing` replaces only the drawing:
the same pygame calls on the same float coordinates, computed with numpy from geometry cached at reset, minus
the calls that change no visible pixel; font, text and surfaces are reused. Frames are bit-identical to
CarRacing-v3's for the same seed and actions. (``envs.low_res_carracing`` draws straight at 96x96 instead.)

``benchmarks/env_speed.py`` measures it against CarRacing-v3.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import pygame
from gymnasium.envs.box2d.car_racing import (
    GRASS_DIM,
    MAX_SHAPE_DIM,
    PLAYFIELD,
    SCALE,
    STATE_H,
    STATE_W,
    WINDOW_H,
    WINDOW_W,
    ZOOM,
    CarRacing,
)
from pygame import gfxdraw

Camera = tuple[float, tuple[float, float], float]
"""(zoom in window pixels per world unit, translation (x, y) in window pixels, angle in radians)."""
Color = Sequence[float] | np.ndarray
"""An RGB colour as pygame takes it: ints, or floats it truncates (CarRacing's domain-randomised colours)."""

DASHBOARD_H = WINDOW_H // 8
"""Window rows under the dashboard's black box: rows 700-799 once flipped, 0-99 as drawn."""
PLAYFIELD_SQUARE = np.array([[(PLAYFIELD, PLAYFIELD), (PLAYFIELD, -PLAYFIELD), (-PLAYFIELD, -PLAYFIELD),
                              (-PLAYFIELD, PLAYFIELD)]])
"""The background polygon, (1, 4, 2) world units."""


def _grass_squares() -> np.ndarray:
    """CarRacing's checkerboard of grass squares, (400, 4, 2) world units, in its drawing order."""
    corners = [(GRASS_DIM, 0.0), (0.0, 0.0), (0.0, GRASS_DIM), (GRASS_DIM, GRASS_DIM)]
    origins = [(GRASS_DIM * x, GRASS_DIM * y) for x in range(-20, 20, 2) for y in range(-20, 20, 2)]
    return np.array([[(ox + cx, oy + cy) for cx, cy in corners] for ox, oy in origins])


GRASS_SQUARES = _grass_squares()


def rotation(angle: float) -> tuple[float, float]:
    """(cos, sin) of ``angle`` (radians) as ``pygame.math.Vector2.rotate_rad`` uses them.

    Rotating the unit vector with pygame itself gives its exact values, including its special cases at
    multiples of 90 degrees, so ``cos * x - sin * y`` and ``sin * x + cos * y`` equal ``rotate_rad``'s.
    """
    cos, sin = pygame.math.Vector2(1.0, 0.0).rotate_rad(angle)
    return cos, sin


def to_window(points: np.ndarray, camera: Camera) -> np.ndarray:
    """World points (..., 2) -> window pixels (..., 2) float64, bit for bit as CarRacing computes them:
    ``Vector2(p).rotate_rad(angle)``, then ``v[0] * zoom + translation[0]``, in the same order."""
    zoom, (tx, ty), angle = camera
    cos, sin = rotation(angle)
    x, y = points[..., 0], points[..., 1]
    return np.stack([(cos * x - sin * y) * zoom + tx, (sin * x + cos * y) * zoom + ty], axis=-1)


def near_window(polygons: np.ndarray) -> np.ndarray:
    """(P, V, 2) window pixels -> (P,) bool: CarRacing's culling test, a vertex near the window."""
    x, y = polygons[..., 0], polygons[..., 1]
    near = (x >= -MAX_SHAPE_DIM) & (x <= WINDOW_W + MAX_SHAPE_DIM)
    near &= (y >= -MAX_SHAPE_DIM) & (y <= WINDOW_H + MAX_SHAPE_DIM)
    return near.any(axis=1)


def hidden(polygons: np.ndarray) -> np.ndarray:
    """(P, V, 2) window pixels -> (P,) bool: every vertex 2+ pixels past the same edge of the window's
    visible part, rows ``DASHBOARD_H``-799 (the dashboard covers the rest).

    gfxdraw truncates coordinates to integers and clips its fill rows and antialiased lines to the
    surface, so drawing such a polygon changes no pixel that shows.
    """
    x, y = polygons[..., 0], polygons[..., 1]
    margin = 2.0
    return ((x < -margin).all(axis=1) | (x > WINDOW_W + margin).all(axis=1)
            | (y < DASHBOARD_H - margin).all(axis=1) | (y > WINDOW_H + margin).all(axis=1))


def covers(polygon: np.ndarray, width: int, height: int) -> bool:
    """Whether the convex (V, 2) polygon contains the pixels [0, width) x [0, height) and 4 more around
    them, with coordinates small enough (< 2^14) for gfxdraw's 16.16 fixed-point scanlines not to overflow.

    gfxdraw then fills every pixel and its antialiased outline misses them all: a plain fill.
    """
    if np.abs(polygon).max() >= 2.0**14:
        return False
    margin = 4.0
    corners = np.array([(-margin, -margin), (width + margin, -margin),
                        (width + margin, height + margin), (-margin, height + margin)])
    edges = np.concatenate((polygon[1:], polygon[:1])) - polygon  # (V, 2)
    to_corners = corners[:, None, :] - polygon[None, :, :]  # (4, V, 2)
    cross = edges[None, :, 0] * to_corners[..., 1] - edges[None, :, 1] * to_corners[..., 0]  # (4, V)
    return bool((cross > 0).all() or (cross < 0).all())


def flip_rows(source: pygame.Surface, target: pygame.Surface, rows: int) -> None:
    """``pygame.transform.flip(source, False, True)`` for the top ``rows`` rows of the result only,
    written into ``target`` (same size and format) instead of a new surface."""
    height = source.get_height()
    flipped, original = pygame.surfarray.pixels2d(target), pygame.surfarray.pixels2d(source)  # (W, H)
    flipped[:, :rows] = original[:, height - 1 : height - 1 - rows : -1]


@functools.lru_cache(maxsize=1)
def _loaded_reward_font() -> pygame.font.Font:
    return pygame.font.Font(pygame.font.get_default_font(), 42)


def _reward_font() -> pygame.font.Font:
    """CarRacing's dashboard font, loaded once per life of pygame's font module: ``pygame.quit()`` (which
    closing a ``render_mode="human"`` CarRacing calls) invalidates every loaded font, so the font is
    loaded again after the module was quit and re-initialised."""
    if not pygame.font.get_init():
        pygame.font.init()
        _loaded_reward_font.cache_clear()
    return _loaded_reward_font()


@functools.lru_cache(maxsize=64)
def reward_text(text: str) -> pygame.Surface:
    """The dashboard's reward counter, white on black, rendered once per distinct text (do not draw on it)."""
    return _reward_font().render(text, True, (255, 255, 255), (0, 0, 0))


class FastCarRacing(CarRacing):
    """CarRacing-v3 with bit-identical ``state_pixels`` frames, ~3x the steps/s.

    Physics, tracks, rewards and the ``human`` and ``rgb_array`` frame assembly are CarRacing's; the
    road drawing is vectorised for every mode, and the observation's frame assembly reuses its font,
    text and surfaces. Observations: (96, 96, 3) uint8.
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
        self._road_polygons = np.empty((0, 4, 2))

    @functools.cached_property
    def _world(self) -> pygame.Surface:
        """The 1000x800 surface the road and car are drawn on, upside down, reused every frame."""
        return pygame.Surface((WINDOW_W, WINDOW_H))

    @functools.cached_property
    def _window(self) -> pygame.Surface:
        """The flipped world plus the dashboard, shrunk to the observation, reused every frame."""
        return pygame.Surface((WINDOW_W, WINDOW_H))

    def _create_track(self) -> bool:
        created = super()._create_track()
        if created:
            self._road_polygons = np.array([polygon for polygon, _ in self.road_poly], dtype=np.float64)
        return created

    def _camera(self) -> Camera:
        """This frame's zoom, translation and angle, computed as ``CarRacing._render`` computes them."""
        assert self.car is not None
        angle = -self.car.hull.angle
        zoom = 0.1 * SCALE * max(1 - self.t, 0) + ZOOM * SCALE * min(self.t, 1)
        scroll_x = -(self.car.hull.position[0]) * zoom
        scroll_y = -(self.car.hull.position[1]) * zoom
        trans = pygame.math.Vector2((scroll_x, scroll_y)).rotate_rad(angle)
        return zoom, (WINDOW_W / 2 + trans[0], WINDOW_H / 4 + trans[1]), angle

    def _render_road(self, zoom: float, translation: tuple[float, float], angle: float) -> None:
        """Paint ``self.surf`` (whatever it holds) as CarRacing paints its fresh black surface.

        The same gfxdraw calls on the same coordinates for the background, grass and road, minus those
        that change no pixel outside the dashboard's box; a background covering the window is a fill.
        """
        camera = (zoom, translation, angle)
        field = to_window(PLAYFIELD_SQUARE, camera)
        if covers(field[0], WINDOW_W, WINDOW_H):
            self.surf.fill(self.bg_color)
        else:
            self.surf.fill((0, 0, 0))
            self._draw_polygons(field, np.array([0]), lambda _: self.bg_color)
        grass = to_window(GRASS_SQUARES, camera)
        self._draw_polygons(grass, self._visible(grass), lambda _: self.grass_color)
        road = to_window(self._road_polygons, camera)
        self._draw_polygons(road, self._visible(road), lambda i: [int(c) for c in self.road_poly[i][1]])

    @staticmethod
    def _visible(polygons: np.ndarray) -> np.ndarray:
        """Indices of the (P, V, 2) window-pixel polygons CarRacing draws that change a pixel that shows."""
        return np.flatnonzero(near_window(polygons) & ~hidden(polygons))

    def _draw_polygons(
        self, polygons: np.ndarray, indices: np.ndarray, color: Callable[[int], Color]
    ) -> None:
        """Antialiased outline, then fill, of each ``polygons[i]`` (V, 2) in ``color(i)``, like CarRacing."""
        for i in indices.tolist():
            points, rgb = polygons[i].tolist(), color(i)
            gfxdraw.aapolygon(self.surf, points, rgb)
            gfxdraw.filled_polygon(self.surf, points, rgb)

    def _render(self, mode: str) -> np.ndarray | bool | None:
        """The (96, 96, 3) observation for ``state_pixels``; CarRacing's own assembly for other modes."""
        if mode != "state_pixels":
            return super()._render(mode)
        if "t" not in self.__dict__:
            return None  # reset() not called yet
        assert self.car is not None
        zoom, translation, angle = self._camera()
        self.surf = self._world
        self._render_road(zoom, translation, angle)
        self.car.draw(self.surf, zoom, translation, angle, False)
        flip_rows(self._world, self._window, WINDOW_H - DASHBOARD_H)  # the dashboard covers the rest
        self.surf = self._window
        self._render_indicators(WINDOW_W, WINDOW_H)
        text = reward_text(f"{self.reward:04.0f}")
        text_rect = text.get_rect()
        text_rect.center = (60, WINDOW_H - WINDOW_H * 2.5 / 40.0)
        self.surf.blit(text, text_rect)
        return self._create_image_array(self.surf, (STATE_W, STATE_H))
