"""PNG rendering of an interpolated UHI grid: colour bar in °C, scale bar, north arrow, sensors.

Uses matplotlib's object API with the Agg canvas (no pyplot global state), so renders may run
in worker threads side by side. Longitudes are stretched by 1/cos(latitude) so that a metre is
as long east–west as north–south on the image.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure

from .idw import Grid, m_per_deg_lon

# Diverging: blue for cool islands (parks, water), red for the heat island; white at 0 °C.
CMAP = "RdYlBu_r"
NICE_LENGTHS_M = (50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000)


def _norm(vmin: float, vmax: float) -> Normalize:
    if vmin < 0 < vmax:
        return TwoSlopeNorm(vcenter=0.0, vmin=vmin, vmax=vmax)
    if vmin == vmax:
        return Normalize(vmin=vmin - 0.5, vmax=vmax + 0.5)
    return Normalize(vmin=vmin, vmax=vmax)


def scale_length_m(width_m: float) -> int:
    """A round length near a quarter of the map width."""
    target = width_m / 4
    return min(NICE_LENGTHS_M, key=lambda n: abs(math.log(n / target)))


def figure_for(grid: Grid, title: str, subtitle: str = "", credit: str = "", *,
               vmin: float | None = None, vmax: float | None = None, label_sensors: bool = False,
               size_in: tuple[float, float] = (7.5, 6.6), dpi: int = 110, note: str | None = None) -> Figure:
    fig = Figure(figsize=size_in, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    finite = grid.values[np.isfinite(grid.values)]
    values_all = [s.value for s in grid.sensors] + finite.tolist()
    lo = min(values_all) if vmin is None else vmin
    hi = max(values_all) if vmax is None else vmax
    norm = _norm(lo, hi)
    w, s, e, n = grid.bbox
    mesh = ax.imshow(grid.values, origin="lower", extent=(w, e, s, n), cmap=CMAP, norm=norm,
                     interpolation="nearest", aspect=1 / math.cos(math.radians(grid.lat0)))
    xs = [p.longitude for p in grid.sensors]
    ys = [p.latitude for p in grid.sensors]
    ax.scatter(xs, ys, c=[p.value for p in grid.sensors], cmap=CMAP, norm=norm, s=42, edgecolors="black",
               linewidths=0.9, zorder=3, label="capteur / sensor")
    if label_sensors:
        for p in grid.sensors:
            ax.annotate(f"{p.value:+.1f}", (p.longitude, p.latitude), textcoords="offset points", xytext=(5, 4),
                        fontsize=7, zorder=4)
    ax.set_xlim(w, e)
    ax.set_ylim(s, n)
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    ax.ticklabel_format(useOffset=False)
    ax.tick_params(labelsize=7)
    ax.set_facecolor("#f2f2f2")  # empty cells (too far from any sensor) show as grey, not as 0 °C
    cbar = fig.colorbar(mesh, ax=ax, shrink=0.85, pad=0.02)
    cbar.set_label("intensité de l'îlot de chaleur / UHI intensity (°C)")
    _scale_bar(ax, grid)
    _north_arrow(ax)
    ax.set_title(title + (f"\n{subtitle}" if subtitle else ""), fontsize=10)
    note = note or (f"IDW p={grid.power:g}, cellule {grid.cell_m:g} m, vide au-delà de {grid.max_distance_m:g} m "
                    f"d'un capteur · {len(grid.sensors)} capteurs")
    # supxlabel, not fig.text: the constrained layout keeps room for it under the axis label.
    fig.supxlabel(note + (f" · {credit}" if credit else ""), fontsize=6.5, color="#444", x=0.01, ha="left")
    return fig


def _scale_bar(ax: Any, grid: Grid) -> None:
    w, s, e, n = grid.bbox
    width_m = (e - w) * m_per_deg_lon(grid.lat0)
    length = scale_length_m(width_m)
    dlon = length / m_per_deg_lon(grid.lat0)
    x0 = w + (e - w) * 0.05
    y0 = s + (n - s) * 0.05
    tick = (n - s) * 0.012
    ax.plot([x0, x0 + dlon], [y0, y0], color="black", linewidth=2.5, solid_capstyle="butt", zorder=5)
    for x in (x0, x0 + dlon):
        ax.plot([x, x], [y0 - tick, y0 + tick], color="black", linewidth=1.2, zorder=5)
    text = f"{length // 1000} km" if length >= 1000 else f"{length} m"
    ax.text(x0 + dlon / 2, y0 + 2 * tick, text, ha="center", va="bottom", fontsize=8, zorder=5,
            bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1})


def _north_arrow(ax: Any) -> None:
    ax.annotate("N", xy=(0.95, 0.95), xytext=(0.95, 0.85), xycoords="axes fraction", ha="center", va="center",
                fontsize=10, fontweight="bold", arrowprops={"arrowstyle": "-|>", "color": "black"})


def render_png(grid: Grid, title: str, subtitle: str = "", credit: str = "", **kwargs: Any) -> bytes:
    fig = figure_for(grid, title, subtitle, credit, **kwargs)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()

