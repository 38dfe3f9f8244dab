"""A small procedural face mesh with a parametric mouth, jaw, eyes and brows.

Coordinates are metres, face-centred: x to the subject's left in the image (viewer's right),
y up, z towards the viewer. The neutral face is about 0.14 m wide and 0.21 m tall, the scale of
VOCASET's FLAME meshes.

The vertex order is fixed (it does not depend on the subject), so every subject's template and
every frame share one topology, as in the real processed datasets. Vertex groups:

* ``skin``: a hexagonal grid over the face plus an outline ring;
* ``perioral``: a ring of skin around the lips;
* lips: six contours (``lip_outer_upper``, ``lip_mid_upper``, ``lip_inner_upper``,
  ``lip_inner_lower``, ``lip_mid_lower``, ``lip_outer_lower``) plus the two ``lip_corners``;
* ``teeth_upper`` / ``teeth_lower`` (incisal edges) and ``tongue`` (tip and blade), inside the mouth;
* per eye (``_r`` = image left / subject's right, ``_l``): ``lid_upper``, ``lid_lower``,
  ``eye_corners``, ``crease`` (upper orbit) and ``under_eye``; ``brow_r`` / ``brow_l``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from .visemes import P_INDEX

# ---------------------------------------------------------------------------------------------
# Canonical layout (metres).
FACE_A = 0.072  # half width of the face outline
FACE_B = 0.106  # half height
FACE_CY = -0.006  # outline centre
MOUTH_Y = -0.052
MOUTH_W = 0.024  # half width of the mouth (corner x)
UPPER_LIP_H = 0.0086  # height of the upper lip (vermilion) at its peaks
LOWER_LIP_H = 0.0098
EYE_X = 0.031
EYE_Y = 0.021
EYE_W = 0.0135  # half width of the eye opening
EYE_UP = 0.0052  # upper lid height above the eye's centre line
EYE_LO = 0.0036
BROW_Y = 0.037

N_LIP = 9  # interior points per lip contour
N_LID = 5  # interior points per eyelid contour
N_BROW = 6
N_OUTLINE = 26
N_PERIORAL = 14
GRID_STEP = 0.013

LIP_CONTOURS = (
    "lip_outer_upper",
    "lip_mid_upper",
    "lip_inner_upper",
    "lip_inner_lower",
    "lip_mid_lower",
    "lip_outer_lower",
)


def _smoothstep(e0: float, e1: float, x):
    t = np.clip((np.asarray(x, dtype=np.float64) - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass
class FaceShape:
    """Per-subject face-shape variation (1.0 / 0.0 = the canonical face)."""

    width: float = 1.0  # global x scale
    height: float = 1.0  # global y scale
    depth: float = 1.0  # global z scale
    lower_face: float = 0.0  # extra length of the face below the nose (fraction)
    mouth_width: float = 1.0
    lip_thickness: float = 1.0
    mouth_drop: float = 0.0  # metres, moves the mouth down (+) or up (-)
    eye_spacing: float = 1.0
    eye_size: float = 1.0
    brow_height: float = 0.0  # metres
    nose: float = 1.0  # nose protrusion
    nose_width: float = 1.0
    chin: float = 1.0  # chin prominence
    cheeks: float = 1.0
    tilt: float = 0.0  # slight left/right asymmetry of the mouth line (metres at the corners)

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "FaceShape":
        u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
        return cls(
            width=u(0.93, 1.07),
            height=u(0.94, 1.06),
            depth=u(0.92, 1.08),
            lower_face=u(-0.06, 0.07),
            mouth_width=u(0.9, 1.12),
            lip_thickness=u(0.8, 1.25),
            mouth_drop=u(-0.002, 0.002),
            eye_spacing=u(0.95, 1.06),
            eye_size=u(0.9, 1.1),
            brow_height=u(-0.002, 0.0025),
            nose=u(0.85, 1.2),
            nose_width=u(0.88, 1.15),
            chin=u(0.7, 1.4),
            cheeks=u(0.7, 1.3),
            tilt=u(-0.0008, 0.0008),
        )

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# ---------------------------------------------------------------------------------------------
# Surfaces.
def _nose_height(y):
    ys = [-0.034, -0.029, -0.022, -0.013, 0.0, 0.014, 0.026, 0.040]
    hs = [0.0, 0.006, 0.019, 0.020, 0.014, 0.008, 0.004, 0.0]
    return np.interp(y, ys, hs)


def _nose_sigma(y):
    return np.interp(y, [-0.030, -0.022, -0.010, 0.010, 0.030], [0.010, 0.0125, 0.008, 0.0065, 0.007])


def surface_z(x, y, shape: FaceShape | None = None):
    """Depth of the (canonical) skin surface at canonical ``(x, y)``."""
    s = shape or FaceShape()
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    r = 1.0 - (x / 0.088) ** 2 - ((y - FACE_CY) / 0.13) ** 2
    z = 0.058 * np.sqrt(np.clip(r, 0.0, None)) - 0.01
    # nose ridge and tip, alae
    z = z + s.nose * _nose_height(y) * np.exp(-((x / (_nose_sigma(y) * s.nose_width)) ** 2))
    for sx in (-1, 1):
        z = z + 0.005 * np.exp(-(((x - sx * 0.0115 * s.nose_width) / 0.005) ** 2) - ((y + 0.024) / 0.005) ** 2)
    # eye sockets, brow ridge, cheekbones
    for sx in (-1, 1):
        z = z - 0.0065 * np.exp(-(((x - sx * EYE_X) / 0.017) ** 2) - ((y - EYE_Y) / 0.012) ** 2)
        z = z + 0.004 * s.cheeks * np.exp(-(((x - sx * 0.043) / 0.016) ** 2) - ((y + 0.010) / 0.014) ** 2)
    z = z + 0.0045 * np.exp(-(((y - BROW_Y - 0.003) / 0.008) ** 2)) * np.exp(-((x / 0.05) ** 4))
    # muzzle (the mouth sits on a rounded dental arch), chin
    z = z + 0.007 * np.exp(-((x / 0.032) ** 2) - ((y - MOUTH_Y) / 0.026) ** 2)
    z = z + 0.006 * s.chin * np.exp(-((x / 0.019) ** 2) - ((y + 0.092) / 0.012) ** 2)
    return z


def _lip_profile(theta, power):
    return np.sin(theta) ** power


# ---------------------------------------------------------------------------------------------
@dataclass
class FaceTopology:
    """Vertex groups, contour parameters and triangles of the face mesh (subject independent)."""

    groups: dict = field(default_factory=dict)  # name -> int array
    theta: np.ndarray | None = None  # contour parameter per vertex (lips, eyes, brows), else nan
    canonical: np.ndarray | None = None  # V x 2 canonical (x, y) used to define the grid
    faces: np.ndarray | None = None  # F x 3 triangles (skin + lips + tongue)
    num_vertices: int = 0

    def group(self, *names: str) -> np.ndarray:
        return np.concatenate([self.groups[n] for n in names]).astype(np.int64)

    # Regions used by the metrics.
    @property
    def lip_region(self) -> np.ndarray:
        return np.sort(self.group(*LIP_CONTOURS, "lip_corners"))

    @property
    def upper_face_region(self) -> np.ndarray:
        """Forehead, brows, eyes, eyelids and the skin above the eyes' lower orbit."""
        eye = self.group(
            "lid_upper_r", "lid_upper_l", "lid_lower_r", "lid_lower_l", "eye_corners_r", "eye_corners_l",
            "crease_r", "crease_l", "under_eye_r", "under_eye_l", "brow_r", "brow_l",
        )
        skin = self.group("skin", "outline")
        cy = self.canonical[skin, 1]
        upper_skin = skin[cy > EYE_Y - 0.012]
        return np.sort(np.unique(np.concatenate([eye, upper_skin])))


def _lip_theta(n: int = N_LIP) -> np.ndarray:
    # from the image-right corner (theta=0, x=+W) to the image-left corner (theta=pi)
    u = np.arange(1, n + 1) / (n + 1)
    return np.pi * (0.5 * u + 0.25 * (1.0 - np.cos(np.pi * u)))  # a little denser near the corners


def _lip_offsets(theta, lip_thickness: float = 1.0):
    """Canonical y offsets (relative to the mouth line) of the six lip contours, closed mouth."""
    x = MOUTH_W * np.cos(theta)
    ou = lip_thickness * (UPPER_LIP_H * _lip_profile(theta, 0.8) - 0.0017 * np.exp(-((x / 0.0045) ** 2)))
    ol = -lip_thickness * LOWER_LIP_H * _lip_profile(theta, 0.85)
    zero = np.zeros_like(theta)
    return {
        "lip_outer_upper": ou,
        "lip_mid_upper": 0.45 * ou,
        "lip_inner_upper": zero + 0.0002 * np.sin(theta),
        "lip_inner_lower": zero - 0.0002 * np.sin(theta),
        "lip_mid_lower": 0.5 * ol,
        "lip_outer_lower": ol,
    }


_LIP_BULGE = {  # forward bulge of each contour (metres, at the middle of the mouth)
    "lip_outer_upper": 0.0016,
    "lip_mid_upper": 0.0048,
    "lip_inner_upper": 0.0030,
    "lip_inner_lower": 0.0028,
    "lip_mid_lower": 0.0046,
    "lip_outer_lower": 0.0014,
}
_LIP_XSCALE = {c: (0.97 if "inner" in c else 1.0) for c in LIP_CONTOURS}


def _eye_contours(eye_size: float = 1.0):
    """Canonical offsets of the eye contours relative to the eye centre (image-right eye)."""
    t = np.pi * np.arange(1, N_LID + 1) / (N_LID + 1)
    w = EYE_W * eye_size
    cx = w * np.cos(t)
    # the upper lid peaks slightly towards the inner corner
    up = EYE_UP * eye_size * np.sin(t) ** 0.8 * (1.0 + 0.12 * np.cos(t))
    lo = -EYE_LO * eye_size * np.sin(t) ** 0.9
    return t, {
        "lid_upper": np.stack([cx, up], 1),
        "lid_lower": np.stack([cx, lo], 1),
        "crease": np.stack([1.12 * cx, 1.75 * up + 0.0012], 1),
        "under_eye": np.stack([1.12 * cx, 1.9 * lo - 0.0012], 1),
        "eye_corners": np.array([[w, 0.0], [-w, 0.0]]),
    }


def _brow(t_count: int = N_BROW):
    t = np.linspace(0.0, 1.0, t_count)
    x = 0.012 + 0.034 * t  # from the nose side outwards
    y = BROW_Y + 0.004 * np.sin(np.pi * (0.25 + 0.75 * t)) - 0.002 * t
    return t, np.stack([x, y], 1)


def build_topology(grid_step: float = GRID_STEP) -> FaceTopology:
    """Create the (subject independent) vertex layout and triangles; `grid_step` (metres) spaces the skin grid (a
    smaller step gives a denser mesh: the BIWI layout's sample uses one, so its vertex count differs from VOCASET's)."""
    pts: list[np.ndarray] = []
    groups: dict[str, np.ndarray] = {}
    thetas: list[np.ndarray] = []
    count = 0

    def add(name, xy, theta=None):
        nonlocal count
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        groups[name] = np.arange(count, count + len(xy))
        pts.append(xy)
        thetas.append(np.full(len(xy), np.nan) if theta is None else np.asarray(theta, dtype=np.float64))
        count += len(xy)

    # lips
    th = _lip_theta()
    offs = _lip_offsets(th)
    for c in LIP_CONTOURS:
        add(c, np.stack([_LIP_XSCALE[c] * MOUTH_W * np.cos(th), MOUTH_Y + offs[c]], 1), th)
    add("lip_corners", [[MOUTH_W, MOUTH_Y], [-MOUTH_W, MOUTH_Y]], [0.0, np.pi])
    # teeth edges and tongue (inside the mouth)
    tx = np.linspace(-0.015, 0.015, 7)
    add("teeth_upper", np.stack([tx, np.full(7, MOUTH_Y + 0.0012)], 1))
    add("teeth_lower", np.stack([tx * 0.92, np.full(7, MOUTH_Y - 0.0010)], 1))
    add("tongue", [[0.0, MOUTH_Y - 0.004], [0.006, MOUTH_Y - 0.0048], [-0.006, MOUTH_Y - 0.0048],
                   [0.011, MOUTH_Y - 0.0065], [-0.011, MOUTH_Y - 0.0065], [0.0, MOUTH_Y - 0.0075],
                   [0.0, MOUTH_Y - 0.0110]])
    # eyes: _r is the eye on the image's left (x < 0), _l on the image's right (x > 0)
    t_eye, eye = _eye_contours()
    for suffix, sx in (("r", -1.0), ("l", 1.0)):
        centre = np.array([sx * EYE_X, EYE_Y])
        for part in ("lid_upper", "lid_lower", "eye_corners", "crease", "under_eye"):
            xy = eye[part] * np.array([sx, 1.0]) + centre
            theta = np.array([0.0, np.pi]) if part == "eye_corners" else t_eye
            add(f"{part}_{suffix}", xy, theta)
    t_brow, brow = _brow()
    for suffix, sx in (("r", -1.0), ("l", 1.0)):
        add(f"brow_{suffix}", brow * np.array([sx, 1.0]), t_brow)
    # a ring of skin around the lips (the perioral region), for a clean triangulation there
    phi = 2 * np.pi * np.arange(N_PERIORAL) / N_PERIORAL
    ring_y = np.where(np.sin(phi) > 0, 0.0140, 0.0158) * np.sin(phi)
    add("perioral", np.stack([(MOUTH_W + 0.0075) * np.cos(phi), MOUTH_Y + ring_y], 1))
    features = np.concatenate(pts, 0)

    # outline ring
    ang = 2 * np.pi * np.arange(N_OUTLINE) / N_OUTLINE
    add("outline", np.stack([FACE_A * np.cos(ang), FACE_CY + FACE_B * np.sin(ang)], 1))

    # hexagonal skin grid inside the outline, away from the features and the mouth / eye openings
    rows = []
    dy = grid_step * np.sqrt(3) / 2
    for i, y in enumerate(np.arange(FACE_CY - FACE_B, FACE_CY + FACE_B + 1e-9, dy)):
        off = 0.5 * grid_step * (i % 2)
        for x in np.arange(-FACE_A - off, FACE_A + grid_step, grid_step) + off:
            rows.append((x, y))
    grid = np.array(rows)
    inside = (grid[:, 0] / FACE_A) ** 2 + ((grid[:, 1] - FACE_CY) / FACE_B) ** 2 < 0.84
    mouth = (grid[:, 0] / (MOUTH_W + 0.0095)) ** 2 + ((grid[:, 1] - MOUTH_Y) / 0.0185) ** 2 < 1.0
    eyes = np.zeros(len(grid), bool)
    for sx in (-1, 1):
        eyes |= ((grid[:, 0] - sx * EYE_X) / (EYE_W + 0.006)) ** 2 + ((grid[:, 1] - EYE_Y) / 0.0125) ** 2 < 1.0
    d = np.sqrt(((grid[:, None, :] - features[None, :, :]) ** 2).sum(-1)).min(1)
    keep = inside & ~mouth & ~eyes & (d > 0.55 * grid_step)
    # keep the grid symmetric: sort by (y, x)
    g = grid[keep]
    g = g[np.lexsort((g[:, 0], g[:, 1]))]
    add("skin", g)

    topo = FaceTopology(groups=groups, theta=np.concatenate(thetas), canonical=np.concatenate(pts, 0))
    topo.num_vertices = count
    topo.faces = _triangulate(topo)
    return topo


def mouth_loop(topo: FaceTopology) -> np.ndarray:
    """Vertex indices of the mouth opening, as a closed loop (right corner, upper lip, left corner, lower lip)."""
    c = topo.groups["lip_corners"]
    return np.concatenate([[c[0]], topo.groups["lip_inner_upper"], [c[1]], topo.groups["lip_inner_lower"][::-1]])


def eye_loop(topo: FaceTopology, suffix: str) -> np.ndarray:
    c = topo.groups[f"eye_corners_{suffix}"]
    return np.concatenate([[c[0]], topo.groups[f"lid_upper_{suffix}"], [c[1]], topo.groups[f"lid_lower_{suffix}"][::-1]])


def _inside(poly: np.ndarray, pts: np.ndarray) -> np.ndarray:
    from matplotlib.path import Path

    return Path(poly).contains_points(pts)


def _triangulate(topo: FaceTopology) -> np.ndarray:
    import matplotlib.tri as mtri

    # the canonical layout has the lips slightly parted, so no triangle bridges the opening in
    # a way the centroid test below cannot catch
    xy = topo.canonical.copy()
    surface = np.setdiff1d(np.arange(topo.num_vertices), topo.group("teeth_upper", "teeth_lower", "tongue"))
    tri = mtri.Triangulation(xy[surface, 0], xy[surface, 1])
    faces = surface[tri.triangles]
    cent = xy[faces].mean(1)
    drop = _inside(xy[mouth_loop(topo)], cent)
    for s in ("r", "l"):
        drop |= _inside(xy[eye_loop(topo, s)], cent)
    iu = np.isin(faces, topo.groups["lip_inner_upper"]).any(1)
    il = np.isin(faces, topo.groups["lip_inner_lower"]).any(1)
    rim = np.isin(faces, topo.group("lip_inner_upper", "lip_inner_lower", "lip_corners")).all(1)
    drop |= iu & il & rim
    faces = faces[~drop]
    # tongue: a small fan around its centre vertex
    t = topo.groups["tongue"]
    rim = t[[0, 1, 3, 6, 4, 2]]
    centre = t[5]
    tongue = np.array([[centre, rim[i], rim[(i + 1) % len(rim)]] for i in range(len(rim))])
    faces = np.concatenate([faces, tongue], 0)
    # orient all triangles counter-clockwise in the canonical front view (normals towards +z)
    a, b, c = xy[faces[:, 0]], xy[faces[:, 1]], xy[faces[:, 2]]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    faces[cross < 0] = faces[cross < 0][:, [0, 2, 1]]
    return faces.astype(np.int64)


# ---------------------------------------------------------------------------------------------
def _warp_xy(xy: np.ndarray, shape: FaceShape) -> np.ndarray:
    """Smooth subject-specific warp of canonical (x, y) positions (no folding for sampled ranges)."""
    x, y = xy[:, 0].copy(), xy[:, 1].copy()
    # mouth width: local x scaling around the mouth
    gm = np.exp(-((x / 0.045) ** 2) - ((y - MOUTH_Y) / 0.022) ** 2)
    x = x * (1.0 + (shape.mouth_width - 1.0) * gm)
    # mouth height: local shift
    y = y - shape.mouth_drop * np.exp(-((y - MOUTH_Y) / 0.02) ** 2)
    # eye spacing and size
    for sx in (-1, 1):
        ge = np.exp(-(((x - sx * EYE_X) / 0.02) ** 2) - ((y - EYE_Y) / 0.014) ** 2)
        x = x + (shape.eye_spacing - 1.0) * sx * EYE_X * ge
    # brows and forehead
    y = y + shape.brow_height * _smoothstep(EYE_Y + 0.004, BROW_Y, y)
    # lower face length (below the nose)
    below = np.clip(-0.02 - y, 0.0, None)
    y = y - shape.lower_face * below
    # mouth line tilt (a small asymmetry)
    y = y + shape.tilt * (x / MOUTH_W) * np.exp(-((x / 0.04) ** 2) - ((y - MOUTH_Y) / 0.02) ** 2)
    return np.stack([x * shape.width, y * shape.height], 1)


def make_template(topo: FaceTopology, shape: FaceShape | None = None) -> np.ndarray:
    """The neutral ``V x 3`` mesh of one subject (float64, metres)."""
    shape = shape or FaceShape()
    xy = topo.canonical.copy()
    th = topo.theta
    # lips: thickness changes the contour offsets
    offs = _lip_offsets(th[topo.groups["lip_outer_upper"]], shape.lip_thickness)
    for c in LIP_CONTOURS:
        xy[topo.groups[c], 1] = MOUTH_Y + offs[c]
    # eyes: size scales the contours about the eye centre
    for sx, s in ((-1.0, "r"), (1.0, "l")):
        centre = np.array([sx * EYE_X, EYE_Y])
        for part in ("lid_upper", "lid_lower", "eye_corners", "crease", "under_eye"):
            idx = topo.groups[f"{part}_{s}"]
            xy[idx] = centre + (xy[idx] - centre) * shape.eye_size
    z = surface_z(xy[:, 0], xy[:, 1], shape)
    # lips bulge forward, tapering towards the corners
    for c in LIP_CONTOURS:
        idx = topo.groups[c]
        z[idx] += _LIP_BULGE[c] * np.sin(th[idx]) ** 0.9 * (0.8 + 0.2 * shape.lip_thickness)
    # teeth and tongue sit behind the lips
    zin = surface_z(0.0, MOUTH_Y, shape)
    for name, back in (("teeth_upper", 0.004), ("teeth_lower", 0.0045)):
        idx = topo.groups[name]
        z[idx] = zin - back - 18.0 * xy[idx, 0] ** 2
    tongue = topo.groups["tongue"]
    z[tongue] = zin - 0.010 - 30.0 * xy[tongue, 0] ** 2 - 1.2 * (MOUTH_Y - 0.004 - xy[tongue, 1])
    # eyelids sit on the eyeball
    for s in ("r", "l"):
        for part, bulge in (("lid_upper", 0.0032), ("lid_lower", 0.0024), ("crease", 0.0012), ("eye_corners", 0.0)):
            idx = topo.groups[f"{part}_{s}"]
            z[idx] += bulge * np.sin(th[idx]) ** 0.7
    for s in ("r", "l"):
        z[topo.groups[f"brow_{s}"]] += 0.0008
    xy = _warp_xy(xy, shape)
    return np.concatenate([xy, (z * shape.depth)[:, None]], 1)


# ---------------------------------------------------------------------------------------------
class FaceRig:
    """Deforms one subject's template from per-frame mouth / upper-face parameters."""

    def __init__(self, topo: FaceTopology, template: np.ndarray):
        self.topo = topo
        self.template = np.asarray(template, dtype=np.float64)
        V = topo.num_vertices
        g = topo.groups
        tpl = self.template
        corners = tpl[g["lip_corners"]]
        self.mouth_centre = corners.mean(0)
        self.lip_idx = topo.group(*LIP_CONTOURS, "lip_corners")
        # jaw weight: the chin and lower lip region rotate with the mandible
        skin = topo.group("skin", "outline", "perioral")
        cy = topo.canonical[:, 1]
        cx = topo.canonical[:, 0]
        w = _smoothstep(0.0, 1.0, (MOUTH_Y + 0.002 - cy) / 0.024)
        w = w * np.exp(-((np.clip(np.abs(cx) - 0.03, 0, None) / 0.022) ** 2))
        self.jaw_w = np.zeros(V)
        self.jaw_w[skin] = w[skin]
        self.jaw_w[g["teeth_lower"]] = 1.0
        self.jaw_w[g["tongue"]] = 0.85
        # mouth-surround skin follows the lip contours (normalised Gaussian weights with a damping
        # term, so the influence fades with the distance from the mouth)
        ctrl = topo.group("lip_outer_upper", "lip_outer_lower", "lip_corners")
        self.ctrl = ctrl
        sig = np.full(len(ctrl), 0.0095)
        sig[-2:] = 0.016  # corners pull the cheeks further
        d2 = ((tpl[skin, None, :2] - tpl[None, ctrl, :2]) ** 2).sum(-1)
        k = np.exp(-d2 / (2 * sig[None, :] ** 2))
        self.skin = skin
        self.skin_w = k / (k.sum(1, keepdims=True) + 0.35)
        # brow / forehead weights for brow raises
        self.brow_w = np.zeros(V)
        ey = EYE_Y
        up = _smoothstep(ey + 0.006, BROW_Y - 0.002, cy) * (1.0 - 0.6 * _smoothstep(BROW_Y + 0.01, 0.1, cy))
        self.brow_w[skin] = up[skin] * np.exp(-((np.clip(np.abs(cx[skin]) - 0.045, 0, None) / 0.02) ** 2))
        for s in ("r", "l"):
            self.brow_w[g[f"brow_{s}"]] = 1.0
            self.brow_w[g[f"crease_{s}"]] = 0.35
        self.side = np.sign(cx)  # -1 image-left (_r), +1 image-right (_l)
        # cheek raise (smile) weights
        self.cheek_w = np.zeros(V)
        cheek = np.exp(-((np.abs(cx) - 0.036) / 0.016) ** 2 - ((cy + 0.012) / 0.014) ** 2)
        self.cheek_w[skin] = cheek[skin]
        for s in ("r", "l"):
            self.cheek_w[g[f"under_eye_{s}"]] = 0.5
            self.cheek_w[g[f"lid_lower_{s}"]] = 0.25

    # -----------------------------------------------------------------------------------------
    def deform(
        self,
        mouth: np.ndarray,
        blink: np.ndarray | None = None,
        brow: np.ndarray | None = None,
        head: np.ndarray | None = None,
    ) -> np.ndarray:
        """Vertices ``T x V x 3`` (float64).

        mouth: ``T x NUM_PARAMS`` (see :data:`training.faces.visemes.PARAMS`); blink / brow:
        ``T x 2`` (image-left, image-right) in [0, 1]; head: ``T x 6`` (rotations in radians about
        x, y, z, then translations in metres), applied about a pivot at the neck.
        """
        topo, g, tpl = self.topo, self.topo.groups, self.template
        T = mouth.shape[0]
        V = topo.num_vertices
        P = lambda name: mouth[:, P_INDEX[name]][:, None]  # noqa: E731
        disp = np.zeros((T, V, 3))
        th = topo.theta

        jaw = P("jaw")
        drop = 0.0135 * jaw  # chin drop, metres
        # jaw: rotation-like field (down and a little back)
        jw = self.jaw_w[None, :]
        disp[:, :, 1] -= drop * jw
        disp[:, :, 2] -= 0.35 * drop * jw

        close = _smoothstep(0.25, 0.8, P("close"))
        tuck = _smoothstep(0.15, 0.75, P("tuck"))
        rnd = P("round")
        spread = P("spread")
        ap = (0.0105 * P("open") + 0.0070 * jaw) * (1.0 - close) * (1.0 - 0.85 * tuck)
        width = np.clip(1.0 + 0.13 * spread - 0.20 * rnd, 0.65, 1.3)
        mc = self.mouth_centre

        lip_d = {}
        for c in LIP_CONTOURS + ("lip_corners",):
            idx = g[c]
            t = th[idx][None, :]
            sin = np.sin(t)
            d = np.zeros((T, len(idx), 3))
            xrel = tpl[idx, 0] - mc[0]
            inner = "inner" in c
            xs = width * (1.0 - (0.28 * rnd if inner else 0.06 * rnd))
            d[:, :, 0] = xrel[None, :] * (xs - 1.0)
            # aperture shape: flatter (rounder opening) when the lips are rounded
            prof = sin ** (0.85 - 0.45 * rnd)
            if c == "lip_corners":
                d[:, :, 1] = -0.12 * ap
                d[:, :, 2] = -0.003 * np.clip(spread, 0, None) + 0.003 * rnd
            elif c.endswith("upper"):
                share = {"lip_inner_upper": 1.0, "lip_mid_upper": 0.55, "lip_outer_upper": 0.25}[c]
                d[:, :, 1] = share * 0.36 * ap * prof + (0.0026 if inner else 0.0012) * tuck * sin
                d[:, :, 1] += 0.0010 * rnd * sin * (0.0 if inner else 1.0)
            else:
                share = {"lip_inner_lower": 1.0, "lip_mid_lower": 0.92, "lip_outer_lower": 0.8}[c]
                down = share * 0.64 * ap * prof + (0.25 * drop if c == "lip_outer_lower" else 0.0)
                # labiodental: the lower lip rises under the upper teeth and moves back
                rise = {"lip_inner_lower": 0.0010, "lip_mid_lower": 0.0042, "lip_outer_lower": 0.0030}[c]
                d[:, :, 1] = -down + tuck * rise * sin
                d[:, :, 1] -= 0.0012 * rnd * sin * (0.0 if inner else 1.0)
                back = {"lip_inner_lower": 0.0050, "lip_mid_lower": 0.0045, "lip_outer_lower": 0.0020}[c]
                d[:, :, 2] -= tuck * back * sin
            if c != "lip_corners":
                taper = sin ** 0.5
                fwd = {"outer": 0.7, "mid": 1.0, "inner": 1.0}[c.split("_")[1]]
                d[:, :, 2] += (0.0065 * fwd * rnd - 0.0012 * close - 0.0015 * np.clip(spread, 0, None)) * taper
            lip_d[c] = d
            disp[:, idx, :] = d  # the lips are positioned explicitly (not by the jaw field)

        # skin around the mouth follows the lip contours' displacement beyond the jaw field
        ctrl_d = disp[:, self.ctrl, :].copy()
        ctrl_d[:, :, 1] += drop * self.jaw_w[self.ctrl][None, :]
        ctrl_d[:, :, 2] += 0.35 * drop * self.jaw_w[self.ctrl][None, :]
        disp[:, self.skin, :] += np.einsum("sc,tcd->tsd", self.skin_w, ctrl_d)

        # teeth: upper fixed, lower with the jaw (already in the jaw field); tongue gestures
        tg = g["tongue"]
        tip = np.zeros(len(tg))
        tip[[0]] = 1.0
        tip[[1, 2]] = 0.6
        tip[[3, 4, 5]] = 0.3
        up, out = P("tongue_up"), P("tongue_out")
        disp[:, tg, 1] += up * 0.0068 * tip[None, :] + drop * 0.6 * up * tip[None, :]
        disp[:, tg, 2] += out * 0.0105 * tip[None, :] + up * 0.0015 * tip[None, :]
        lift = np.array([1.0, 0.9, 0.9, 0.6, 0.6, 0.5, 0.3])
        disp[:, tg, 1] += out * (0.0042 + 0.3 * drop) * lift[None, :]

        # smile raises the cheeks a little
        disp[:, :, 1] += 0.0012 * np.clip(spread, 0, None) * self.cheek_w[None, :]

        # upper face: blinks and brow raises
        if blink is not None:
            for k, s in enumerate(("r", "l")):
                b = _smoothstep(0.0, 1.0, blink[:, k])[:, None]
                lu, ll = g[f"lid_upper_{s}"], g[f"lid_lower_{s}"]
                gap = (tpl[ll, 1] + 0.0004) - tpl[lu, 1]
                disp[:, lu, 1] += b * gap[None, :]
                disp[:, lu, 2] += b * 0.0008
                disp[:, ll, 1] += b * 0.0006
                disp[:, g[f"crease_{s}"], 1] += b * 0.3 * gap.mean()
        if brow is not None:
            for k, sgn in enumerate((-1.0, 1.0)):
                r = brow[:, k][:, None]
                w = self.brow_w * np.where(self.side == sgn, 1.0, np.where(self.side == 0, 0.5, 0.0))
                disp[:, :, 1] += 0.0042 * r * w[None, :]
                lu = g["lid_upper_" + ("r" if sgn < 0 else "l")]
                disp[:, lu, 1] += 0.0007 * r

        verts = tpl[None, :, :] + disp
        if head is not None:
            verts = _apply_head(verts, head)
        return verts


def _apply_head(verts: np.ndarray, head: np.ndarray) -> np.ndarray:
    """Small rigid head motion about a neck pivot (first-order rotations are plenty at < 1 degree)."""
    pivot = np.array([0.0, -0.13, -0.05])
    p = verts - pivot
    rx, ry, rz = head[:, 0:1], head[:, 1:2], head[:, 2:3]
    out = p.copy()
    # R ~ I + [w]x plus the second-order term, exact enough for small angles
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    out[..., 0] = x + (ry * z - rz * y)
    out[..., 1] = y + (rz * x - rx * z)
    out[..., 2] = z + (rx * y - ry * x)
    out += pivot + head[:, None, 3:6]
    return out
