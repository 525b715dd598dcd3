// Rendering of one phantom frontal chest radiograph in a float canvas (0 = black, 1 = white):
// body outline, lungs (superellipses cut by the diaphragm domes), mediastinum and spine, heart
// silhouette (its width encodes the cardiothoracic ratio), vessel markings, ribs and clavicles,
// and the findings where anatomy says they appear. Signals are deliberately strong and
// consistent (this data set exists to show that a small model learns), not realistic.
// Image convention: the patient's right is the image's left.
import type { Rng } from '../../data/rng.js';
import type { DemoClass, FindingFacts, Side, Zone } from './reports.js';

export type BoxXY = [number, number, number, number];

export interface Probe {
  /** Where the finding is (positive) or would be (negative) drawn. */
  box: BoxXY;
  /** A reference region; statistic = sign * (mean(box) - mean(ref)). */
  ref: BoxXY;
  sign: 1 | -1;
}

export interface Rendered {
  width: number;
  height: number;
  /** Grey levels in [0, 1], row-major. */
  pixels: Float32Array;
  facts: FindingFacts[];
  /** Boxes of the drawn findings in output pixels (x1, y1, x2, y2 inclusive). */
  boxes: { cls: DemoClass; box: BoxXY }[];
  /** One probe per class, for every image (see Probe). */
  probes: Record<DemoClass, Probe>;
  /** Cardiothoracic ratio as drawn. */
  ctr: number;
}

// ---- canvas primitives ------------------------------------------------------------------------

class Canvas {
  readonly d: Float32Array;
  constructor(
    readonly w: number,
    readonly h: number,
    fill = 0,
  ) {
    this.d = new Float32Array(w * h);
    if (fill) this.d.fill(fill);
  }
}

const clamp01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);

/** Superellipse radius (|dx|^p + |dy|^p)^(1/p), exact away from 1 only to the extent needed. */
function superR(dx: number, dy: number, p: number): number {
  const q = dx ** p + dy ** p;
  if (q > 1.5 || q < 0.6) return Math.pow(q, 1 / p);
  return 1 + (q - 1) / p - ((p - 1) * (q - 1) * (q - 1)) / (2 * p * p);
}

/**
 * A soft-edged (super)ellipse: amp * coverage (* dome profile), combined by add or max, optionally
 * multiplied by a mask canvas.
 */
function ellipse(
  c: Canvas,
  cx: number,
  cy: number,
  rx: number,
  ry: number,
  amp: number,
  o: { edge?: number; power?: number; dome?: boolean; max?: boolean; mask?: Canvas } = {},
): void {
  const edge = o.edge ?? 2;
  const p = o.power ?? 2;
  const x0 = Math.max(0, Math.floor(cx - rx - edge)),
    x1 = Math.min(c.w - 1, Math.ceil(cx + rx + edge));
  const y0 = Math.max(0, Math.floor(cy - ry - edge)),
    y1 = Math.min(c.h - 1, Math.ceil(cy + ry + edge));
  const scale = Math.min(rx, ry) / edge;
  for (let y = y0; y <= y1; y++) {
    const dy = Math.abs((y + 0.5 - cy) / ry);
    for (let x = x0; x <= x1; x++) {
      const dx = Math.abs((x + 0.5 - cx) / rx);
      const r = p === 2 ? Math.sqrt(dx * dx + dy * dy) : superR(dx, dy, p);
      let t = clamp01((1 - r) * scale + 0.5);
      if (t === 0) continue;
      if (o.dome) t *= 0.35 + 0.65 * Math.sqrt(Math.max(0, 1 - r * r));
      const i = y * c.w + x;
      const v = amp * t * (o.mask ? o.mask.d[i] : 1);
      if (o.max) {
        if (v > c.d[i]) c.d[i] = v;
      } else c.d[i] += v;
    }
  }
}

/** A soft line segment of half-width hw, max-combined at amplitude amp. */
function segment(c: Canvas, ax: number, ay: number, bx: number, by: number, hw: number, amp: number): void {
  const x0 = Math.max(0, Math.floor(Math.min(ax, bx) - hw - 1)),
    x1 = Math.min(c.w - 1, Math.ceil(Math.max(ax, bx) + hw + 1));
  const y0 = Math.max(0, Math.floor(Math.min(ay, by) - hw - 1)),
    y1 = Math.min(c.h - 1, Math.ceil(Math.max(ay, by) + hw + 1));
  const vx = bx - ax,
    vy = by - ay;
  const len2 = vx * vx + vy * vy || 1e-9;
  for (let y = y0; y <= y1; y++)
    for (let x = x0; x <= x1; x++) {
      const px = x + 0.5 - ax,
        py = y + 0.5 - ay;
      const t = Math.max(0, Math.min(1, (px * vx + py * vy) / len2));
      const dx = px - t * vx,
        dy = py - t * vy;
      const v = amp * clamp01(hw - Math.sqrt(dx * dx + dy * dy) + 0.5);
      const i = y * c.w + x;
      if (v > c.d[i]) c.d[i] = v;
    }
}

/** Separable box blur, radius r, `passes` times (a Gaussian approximation). */
export function boxBlur(c: Canvas, r: number, passes = 2): void {
  if (r < 1) return;
  const { w, h, d } = c;
  const line = new Float32Array(Math.max(w, h));
  const n = 2 * r + 1;
  for (let p = 0; p < passes; p++) {
    for (let y = 0; y < h; y++) {
      const o = y * w;
      for (let x = 0; x < w; x++) line[x] = d[o + x];
      let s = 0;
      for (let k = -r; k <= r; k++) s += line[Math.min(w - 1, Math.max(0, k))];
      for (let x = 0; x < w; x++) {
        d[o + x] = s / n;
        s += line[Math.min(w - 1, x + r + 1)] - line[Math.max(0, x - r)];
      }
    }
    for (let x = 0; x < w; x++) {
      for (let y = 0; y < h; y++) line[y] = d[y * w + x];
      let s = 0;
      for (let k = -r; k <= r; k++) s += line[Math.min(h - 1, Math.max(0, k))];
      for (let y = 0; y < h; y++) {
        d[y * w + x] = s / n;
        s += line[Math.min(h - 1, y + r + 1)] - line[Math.max(0, y - r)];
      }
    }
  }
}

/** Approximately standard normal: the sum of four uniform bytes of one draw, standardised. */
function gauss(rng: Rng): number {
  const u = rng.nextU32();
  return ((u & 255) + ((u >>> 8) & 255) + ((u >>> 16) & 255) + (u >>> 24) - 510) / 147.8;
}

// ---- anatomy -----------------------------------------------------------------------------------

interface Lung {
  side: 'right' | 'left';
  s: -1 | 1; // image direction of lateral
  cx: number;
  cy: number;
  rx: number;
  ry: number;
  domeTop: number;
  domeDepth: number;
}

const POWER = 2.4;

function domeY(l: Lung, x: number): number {
  const u = (x - l.cx) / l.rx;
  return l.domeTop + l.domeDepth * u * u;
}

function zoneY(l: Lung, z: Zone): number {
  return z === 'upper' ? l.cy - 0.5 * l.ry : z === 'mid' ? l.cy : l.cy + 0.42 * l.ry;
}

const box = (x1: number, y1: number, x2: number, y2: number): BoxXY => [x1, y1, x2, y2];
const grow = (b: BoxXY, fx: number, fy = fx): BoxXY => {
  const cx = (b[0] + b[2]) / 2,
    cy = (b[1] + b[3]) / 2,
    hx = ((b[2] - b[0]) / 2) * fx,
    hy = ((b[3] - b[1]) / 2) * fy;
  return [cx - hx, cy - hy, cx + hx, cy + hy];
};

export interface RenderOptions {
  width: number;
  height: number;
  classes: ReadonlySet<DemoClass>;
}

/** Renders one frontal image with the given findings present. */
export function renderFrontal(rng: Rng, opt: RenderOptions): Rendered {
  const W = opt.width,
    H = opt.height;
  const has = (c: DemoClass) => opt.classes.has(c);
  const side = (): 'right' | 'left' => (rng.next() < 0.5 ? 'right' : 'left');
  const sc = rng.uniform(0.94, 1.04);
  const m = 0.045 * W * sc;
  const rx = 0.165 * W * sc * rng.uniform(0.95, 1.05);
  const ry = 0.29 * H * rng.uniform(0.95, 1.05);
  const cy = 0.45 * H + rng.uniform(-0.015, 0.015) * H;
  const mk = (sd: 'right' | 'left'): Lung => {
    const s = sd === 'right' ? -1 : 1;
    return {
      side: sd,
      s,
      cx: W / 2 + s * (m + rx),
      cy,
      rx: rx * (sd === 'left' ? 0.97 : 1),
      ry,
      domeTop: cy + ry * (sd === 'right' ? 0.8 : 0.86),
      domeDepth: 0.07 * H,
    };
  };
  const lungs = { right: mk('right'), left: mk('left') };
  const thoraxW = 2 * (m + 2 * rx);
  const facts: FindingFacts[] = [];
  const boxes: { cls: DemoClass; box: BoxXY }[] = [];
  const probes = {} as Record<DemoClass, Probe>;

  // Atelectasis: volume loss raises that side's hemidiaphragm (decided before the lung mask).
  const atSide = side();
  const atZone: Zone = rng.next() < 0.7 ? 'lower' : 'mid';
  if (has('Atelectasis')) lungs[atSide].domeTop -= 0.05 * H;

  // Heart: cardiothoracic ratio 0.38-0.46 normal, 0.58-0.68 enlarged.
  const ctr = has('Cardiomegaly') ? rng.uniform(0.58, 0.68) : rng.uniform(0.38, 0.46);
  const heartEdge = (r: number) => W / 2 + 1.3 * ((r * thoraxW) / 2);
  const hrx = (ctr * thoraxW) / 2;
  const hcx = W / 2 + 0.3 * hrx;
  const hcy = lungs.left.domeTop - 0.1 * H;
  const hry = 0.14 * H;

  // ---- masks
  const body = new Canvas(W, H);
  ellipse(body, W / 2, 0.56 * H, 0.47 * W * sc, 0.64 * H, 1, { edge: 5, max: true });
  ellipse(body, W / 2, 0.02 * H, 0.11 * W, 0.16 * H, 1, { edge: 4, max: true });
  const heart = new Canvas(W, H);
  ellipse(heart, hcx, hcy, hrx, hry, 1, { edge: 3, power: 2.2, max: true });
  const lung = new Canvas(W, H);
  for (const l of [lungs.right, lungs.left]) {
    const x0 = Math.max(0, Math.floor(l.cx - l.rx - 3)),
      x1 = Math.min(W - 1, Math.ceil(l.cx + l.rx + 3));
    const y0 = Math.max(0, Math.floor(l.cy - l.ry - 3)),
      y1 = Math.min(H - 1, Math.ceil(l.cy + l.ry + 3));
    const scale = Math.min(l.rx, l.ry) / 2.5;
    for (let y = y0; y <= y1; y++) {
      const dy = Math.abs((y + 0.5 - l.cy) / l.ry);
      for (let x = x0; x <= x1; x++) {
        const dx = Math.abs((x + 0.5 - l.cx) / l.rx);
        const r = superR(dx, dy, POWER);
        const t = clamp01((1 - r) * scale + 0.5) * clamp01((domeY(l, x + 0.5) - (y + 0.5)) / 2.5 + 0.5);
        const i = y * W + x;
        if (t > lung.d[i]) lung.d[i] = t;
      }
    }
  }
  for (let i = 0; i < W * H; i++) lung.d[i] *= 1 - heart.d[i];

  // ---- pneumothorax zone (lateral apical rim without markings) and its pleural line
  const ptxSide = side();
  const ptxK = rng.uniform(0.22, 0.34);
  const pl = lungs[ptxSide];
  const crx = pl.rx * (1 - ptxK),
    cry = pl.ry * (1 - ptxK * 0.8);
  const ccx = pl.cx - pl.s * (pl.rx - crx),
    ccy = pl.cy + (pl.ry - cry);
  const ptxBox = box(
    pl.s > 0 ? ccx + crx * 0.55 : pl.cx - pl.rx,
    pl.cy - pl.ry,
    pl.s > 0 ? pl.cx + pl.rx : ccx - crx * 0.55,
    pl.cy - pl.ry * 0.15,
  );
  const ptx = new Canvas(W, H);
  const pline = new Canvas(W, H);
  if (has('Pneumothorax')) {
    for (let y = Math.max(0, Math.floor(pl.cy - pl.ry)); y < Math.min(H, pl.cy + pl.ry * 0.2); y++) {
      const dy = Math.abs((y + 0.5 - ccy) / cry);
      for (let x = Math.max(0, Math.floor(pl.cx - pl.rx)); x < Math.min(W, pl.cx + pl.rx); x++) {
        const i = y * W + x;
        if (lung.d[i] <= 0) continue;
        const dx = Math.abs((x + 0.5 - ccx) / crx);
        const r = superR(dx, dy, POWER);
        const dist = (r - 1) * Math.min(crx, cry);
        ptx.d[i] = lung.d[i] * clamp01(dist / 1.5 + 0.5);
        pline.d[i] = lung.d[i] * clamp01(1.6 - Math.abs(dist));
      }
    }
    facts.push({ cls: 'Pneumothorax', side: ptxSide });
    boxes.push({ cls: 'Pneumothorax', box: ptxBox });
  }
  const rimIn = ccx + pl.s * crx,
    rimOut = pl.cx + pl.s * pl.rx * 0.97;
  const ptxProbe = box(Math.min(rimIn, rimOut), pl.cy - pl.ry * 0.75, Math.max(rimIn, rimOut), pl.cy - pl.ry * 0.3);
  // reference: the mirror image of the probe over the other lung
  probes.Pneumothorax = {
    box: ptxProbe,
    ref: box(W - ptxProbe[2], ptxProbe[1], W - ptxProbe[0], ptxProbe[3]),
    sign: -1,
  };

  // ---- effusion: dense fluid at the base with a meniscus rising laterally
  const effSide: Side = rng.next() < 0.25 ? 'bilateral' : side();
  const effDepth = rng.uniform(0.16, 0.26) * H;
  const fluid = new Canvas(W, H);
  const effBoxes: BoxXY[] = [];
  for (const l of [lungs.right, lungs.left]) {
    if (effSide !== 'bilateral' && effSide !== l.side) continue;
    const level = l.domeTop + l.domeDepth - effDepth;
    effBoxes.push(box(l.cx - l.rx, level - 0.05 * H, l.cx + l.rx, l.domeTop + l.domeDepth));
    if (!has('Effusion')) continue;
    for (let x = Math.max(0, Math.floor(l.cx - l.rx)); x <= Math.min(W - 1, Math.ceil(l.cx + l.rx)); x++) {
      const lat = clamp01(((x + 0.5 - l.cx) * l.s + l.rx) / (2 * l.rx));
      const yf = level + 0.04 * H - 0.09 * H * lat * lat;
      for (let y = Math.max(0, Math.floor(yf - 3)); y < H; y++) {
        const i = y * W + x;
        fluid.d[i] = Math.max(fluid.d[i], lung.d[i] * clamp01((y + 0.5 - yf) / 2.5 + 0.5));
      }
    }
  }
  if (has('Effusion')) {
    facts.push({ cls: 'Effusion', side: effSide });
    for (const b of effBoxes) boxes.push({ cls: 'Effusion', box: b });
  }
  {
    const l = effSide === 'left' ? lungs.left : lungs.right;
    const b = effBoxes[0];
    probes.Effusion = {
      box: box(b[0] + 0.2 * l.rx, b[3] - 0.1 * H, b[2] - 0.2 * l.rx, b[3] - 0.02 * H),
      ref: box(l.cx - 0.4 * l.rx, l.cy - 0.25 * l.ry, l.cx + 0.4 * l.rx, l.cy),
      sign: 1,
    };
  }

  // ---- density composition
  const D = new Canvas(W, H, 0.04);
  for (let i = 0; i < W * H; i++) D.d[i] += 0.5 * body.d[i] - 0.36 * lung.d[i] + 0.07 * heart.d[i];
  // spine and mediastinum
  ellipse(D, W / 2, 0.5 * H, 0.036 * W, 0.7 * H, 0.1, { edge: 3, power: 6, mask: body });
  ellipse(D, W / 2 + 0.01 * W, lungs.left.cy - 0.55 * ry, 0.03 * W, 0.04 * H, 0.06, { edge: 3 }); // aortic knob

  // vessel markings and lung texture
  const mark = new Canvas(W, H);
  for (const l of [lungs.right, lungs.left]) {
    const hx = l.cx - l.s * l.rx * 0.55,
      hy = l.cy + 0.05 * l.ry;
    for (let v = 0; v < 16; v++) {
      const ang = rng.uniform(-1.25, 1.1);
      let x = hx,
        y = hy,
        hw = 1.6;
      const len = rng.uniform(0.35, 0.9) * l.rx;
      let a = ang;
      for (let sgt = 0; sgt < 4; sgt++) {
        const nx = x + l.s * Math.cos(a) * len * 0.3,
          ny = y + Math.sin(a) * len * 0.3;
        segment(mark, x, y, nx, ny, hw, 0.09 - sgt * 0.015);
        x = nx;
        y = ny;
        hw *= 0.75;
        a += rng.uniform(-0.3, 0.3);
      }
    }
  }
  const tex = new Canvas(W, H);
  for (let i = 0; i < W * H; i++) tex.d[i] = rng.next() - 0.5;
  boxBlur(tex, Math.max(2, Math.round(W / 100)), 2);
  for (let i = 0; i < W * H; i++) {
    const visible = lung.d[i] * (1 - ptx.d[i]) * (1 - fluid.d[i]);
    D.d[i] += visible * (mark.d[i] + 0.25 * tex.d[i]) - 0.15 * ptx.d[i] + 0.2 * pline.d[i] + 0.4 * fluid.d[i];
  }

  // ---- ribs and clavicles
  const ribs = new Canvas(W, H);
  const hw = 0.012 * H;
  const fracSide = side();
  const fracRib = 2 + rng.int(5);
  const fracT = rng.uniform(0.45, 0.75);
  // Pixel floors (inactive from ~200 px up) keep a fracture visible in small renders (the demo's
  // ~100 px images): a gap of at least ~6 px and a step-off of at least 4 px (more than a rib's
  // width: a displaced fracture, as most report templates say).
  const step = Math.max(1.1 * hw, 4);
  let fracBox: BoxXY = [0, 0, 1, 1];
  for (const l of [lungs.right, lungs.left]) {
    const x0 = W / 2 + l.s * m * 0.5;
    const span = 2 * l.rx + m * 0.6 + 0.02 * W;
    const halfGap = Math.max(0.035, 3 / span);
    for (let k = 0; k < 9; k++) {
      const y0 = l.cy - l.ry + 0.02 * H + k * 0.068 * H;
      const frac = l.side === fracSide && k === fracRib;
      const P = (t: number): [number, number] => [
        x0 + l.s * t * span,
        y0 - 0.03 * H * Math.sin(Math.PI * t * 0.9) + 0.1 * H * t * t,
      ];
      const N = 20;
      const broken = frac && has('Fracture');
      for (let j = 0; j < N; j++) {
        let a = j / N,
          b = (j + 1) / N;
        if (broken) {
          if (b > fracT - halfGap && a < fracT + halfGap) {
            if (a < fracT - halfGap) b = fracT - halfGap;
            else if (b > fracT + halfGap) a = fracT + halfGap;
            else continue;
          }
        }
        const off = broken && a >= fracT ? step : 0;
        const [ax, ay] = P(a),
          [bx, by] = P(b);
        segment(ribs, ax, ay + off, bx, by + off, hw, 1);
      }
      if (frac) {
        const [fx, fy] = P(fracT);
        const gx = halfGap * span;
        fracBox = box(fx - gx * 0.8, fy - hw * 1.3, fx + gx * 0.8, fy + hw * 1.3);
      }
    }
    segment(
      ribs,
      W / 2 + l.s * 0.05 * W,
      l.cy - l.ry + 0.01 * H,
      W / 2 + l.s * 0.4 * W,
      l.cy - l.ry - 0.05 * H,
      0.013 * H,
      1,
    ); // clavicle
  }
  for (let i = 0; i < W * H; i++) D.d[i] += 0.13 * ribs.d[i] * body.d[i];
  if (has('Fracture')) {
    facts.push({ cls: 'Fracture', side: fracSide, number: fracRib + 3 });
    boxes.push({ cls: 'Fracture', box: grow(fracBox, 1.6, 1.4) });
  }
  {
    const [x1, y1, x2, y2] = fracBox;
    const wdt = x2 - x1;
    probes.Fracture = {
      box: box(x1 + wdt * 0.2, y1 + (y2 - y1) * 0.3, x2 - wdt * 0.2, y2 - (y2 - y1) * 0.3),
      ref: box(x1 - 1.5 * wdt, y1, x2 + 1.5 * wdt, y2),
      sign: -1,
    };
  }

  // ---- in-lung findings
  const lesion = new Canvas(W, H);
  const place = (l: Lung, z: Zone, r: number): [number, number] => {
    for (let tries = 0; tries < 30; tries++) {
      const x = l.cx + l.s * rng.uniform(-0.35, 0.55) * l.rx;
      const y = zoneY(l, z) + rng.uniform(-0.12, 0.12) * l.ry;
      const xi = Math.min(W - 1, Math.max(0, Math.round(x))),
        yi = Math.min(H - 1, Math.max(0, Math.round(y)));
      const ok = [
        [0, 0],
        [r, 0],
        [-r, 0],
        [0, r],
        [0, -r],
      ].every(([ex, ey]) => {
        const xx = Math.min(W - 1, Math.max(0, xi + ex)),
          yy = Math.min(H - 1, Math.max(0, yi + ey));
        return lung.d[yy * W + xx] > 0.9 && fluid.d[yy * W + xx] < 0.1 && ptx.d[yy * W + xx] < 0.1;
      });
      if (ok || tries === 29) return [x, y];
    }
    return [l.cx, l.cy];
  };
  const zone = (): Zone => (['upper', 'mid', 'lower'] as const)[rng.int(3)];
  // opacity: patchy cluster of blobs
  {
    const sd = side(),
      z = zone(),
      l = lungs[sd];
    const [ox, oy] = place(l, z, 0.05 * W);
    const patch = new Canvas(W, H);
    let bx1 = ox,
      by1 = oy,
      bx2 = ox,
      by2 = oy;
    const n = 8 + rng.int(6);
    for (let k = 0; k < n; k++) {
      const r = rng.uniform(0.025, 0.05) * W;
      const x = ox + rng.uniform(-0.07, 0.07) * W,
        y = oy + rng.uniform(-0.06, 0.06) * H;
      if (has('Opacity')) ellipse(patch, x, y, r, r * rng.uniform(0.7, 1.2), 1, { edge: 4, max: true });
      bx1 = Math.min(bx1, x - r);
      by1 = Math.min(by1, y - r);
      bx2 = Math.max(bx2, x + r);
      by2 = Math.max(by2, y + r);
    }
    const b = box(bx1, by1, bx2, by2);
    if (has('Opacity')) {
      boxBlur(patch, 2, 2);
      for (let i = 0; i < W * H; i++) lesion.d[i] += 0.3 * patch.d[i] * lung.d[i];
      facts.push({ cls: 'Opacity', side: sd, zone: z });
      boxes.push({ cls: 'Opacity', box: b });
    }
    const core = box(ox - 0.04 * W, oy - 0.04 * H, ox + 0.04 * W, oy + 0.04 * H);
    probes.Opacity = { box: core, ref: grow(core, 2.5), sign: 1 };
  }
  // nodule, mass
  for (const cls of ['Nodule', 'Mass'] as const) {
    const sd = side(),
      z = zone(),
      l = lungs[sd];
    // a nodule keeps a radius of at least 2.2 px in small renders (inactive from ~160 px up)
    const r = cls === 'Nodule' ? Math.max(2.2, rng.uniform(0.014, 0.022) * W) : rng.uniform(0.055, 0.08) * W;
    const [x, y] = place(l, z, r);
    if (has(cls)) {
      if (cls === 'Nodule') ellipse(lesion, x, y, r, r, 0.34, { edge: 1.2, dome: true, mask: lung });
      else {
        const tmp = new Canvas(W, H);
        ellipse(tmp, x, y, r, r * rng.uniform(0.85, 1.1), 1, { edge: 2.5, dome: true, max: true });
        ellipse(tmp, x + rng.uniform(-0.4, 0.4) * r, y + rng.uniform(-0.4, 0.4) * r, r * 0.7, r * 0.7, 1, {
          edge: 2.5,
          dome: true,
          max: true,
        });
        for (let i = 0; i < W * H; i++) lesion.d[i] += 0.34 * tmp.d[i] * Math.max(lung.d[i], 0.3);
      }
      facts.push({ cls, side: sd, zone: z, number: cls === 'Nodule' ? 6 + rng.int(12) : 4 + rng.int(5) });
      boxes.push({ cls, box: box(x - 1.35 * r, y - 1.35 * r, x + 1.35 * r, y + 1.35 * r) });
    }
    const core = box(x - 0.6 * r, y - 0.6 * r, x + 0.6 * r, y + 0.6 * r);
    probes[cls] = { box: core, ref: grow(core, 4), sign: 1 };
  }
  // atelectasis: plate-like band with volume loss (hemidiaphragm raised above)
  {
    const l = lungs[atSide];
    const len = rng.uniform(0.45, 0.7) * l.rx;
    const [x, y] = place(l, atZone, 0.03 * W);
    const ang = rng.uniform(-0.2, 0.2);
    const ax = x - (Math.cos(ang) * len) / 2,
      ay = y - (Math.sin(ang) * len) / 2;
    const bx = x + (Math.cos(ang) * len) / 2,
      by = y + (Math.sin(ang) * len) / 2;
    const ahw = 0.012 * H;
    if (has('Atelectasis')) {
      const tmp = new Canvas(W, H);
      segment(tmp, ax, ay, bx, by, ahw, 1);
      boxBlur(tmp, 1, 1);
      for (let i = 0; i < W * H; i++) lesion.d[i] += 0.34 * tmp.d[i] * lung.d[i];
      facts.push({ cls: 'Atelectasis', side: atSide, zone: atZone });
      boxes.push({
        cls: 'Atelectasis',
        box: box(Math.min(ax, bx) - 4, Math.min(ay, by) - ahw - 4, Math.max(ax, bx) + 4, Math.max(ay, by) + ahw + 4),
      });
    }
    const core = box(x - len * 0.35, y - ahw * 0.6, x + len * 0.35, y + ahw * 0.6);
    probes.Atelectasis = { box: core, ref: grow(core, 1.3, 6), sign: 1 };
  }
  for (let i = 0; i < W * H; i++) D.d[i] += lesion.d[i];

  // cardiomegaly probe: the strip an enlarged heart fills beside a normal heart's border
  if (has('Cardiomegaly')) {
    facts.push({ cls: 'Cardiomegaly' });
    boxes.push({ cls: 'Cardiomegaly', box: box(hcx - hrx, hcy - hry, hcx + hrx, hcy + hry) });
  }
  probes.Cardiomegaly = {
    box: box(heartEdge(0.5), hcy - 0.3 * hry, heartEdge(0.56), hcy + 0.3 * hry),
    ref: box(heartEdge(0.5), lungs.left.cy - 0.3 * ry, heartEdge(0.56), lungs.left.cy),
    sign: 1,
  };

  boxBlur(D, 1, 1);
  return finishImage(rng, D, { facts, boxes, probes, ctr });
}

// ---- global variation: rotation, shift, scale, collimation, window, gamma, noise ----------------

function finishImage(rng: Rng, D: Canvas, r: Omit<Rendered, 'width' | 'height' | 'pixels'>): Rendered {
  const { w: W, h: H } = D;
  const theta = rng.uniform(-4, 4) * (Math.PI / 180);
  const s = rng.uniform(0.95, 1.05);
  const tx = rng.uniform(-0.03, 0.03) * W,
    ty = rng.uniform(-0.03, 0.03) * H;
  const cos = Math.cos(theta),
    sin = Math.sin(theta);
  const cx = W / 2,
    cy = H / 2;
  const fwd = (x: number, y: number): [number, number] => {
    const dx = (x - cx) * s,
      dy = (y - cy) * s;
    return [cx + tx + cos * dx - sin * dy, cy + ty + sin * dx + cos * dy];
  };
  const out = new Float32Array(W * H);
  const bg = 0.04;
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const dx = x + 0.5 - cx - tx,
        dy = y + 0.5 - cy - ty;
      const sx = (cos * dx + sin * dy) / s + cx - 0.5,
        sy = (-sin * dx + cos * dy) / s + cy - 0.5;
      const x0 = Math.floor(sx),
        y0 = Math.floor(sy);
      if (x0 < 0 || y0 < 0 || x0 >= W - 1 || y0 >= H - 1) {
        out[y * W + x] = bg;
        continue;
      }
      const fx = sx - x0,
        fy = sy - y0,
        i = y0 * W + x0;
      const d = D.d;
      out[y * W + x] = (d[i] * (1 - fx) + d[i + 1] * fx) * (1 - fy) + (d[i + W] * (1 - fx) + d[i + W + 1] * fx) * fy;
    }
  const mapBox = (b: BoxXY): BoxXY => {
    const pts = [fwd(b[0], b[1]), fwd(b[2], b[1]), fwd(b[0], b[3]), fwd(b[2], b[3])];
    const xs = pts.map((p) => p[0]),
      ys = pts.map((p) => p[1]);
    const c = (v: number, hi: number) => Math.min(hi, Math.max(0, Math.round(v)));
    return [c(Math.min(...xs), W - 1), c(Math.min(...ys), H - 1), c(Math.max(...xs), W - 1), c(Math.max(...ys), H - 1)];
  };
  // collimation: unexposed (white) borders on some sides
  if (rng.next() < 0.3) {
    const t = Math.round(rng.uniform(0, 0.05) * H),
      b = Math.round(rng.uniform(0, 0.05) * H);
    const l = Math.round(rng.uniform(0, 0.04) * W),
      rr = Math.round(rng.uniform(0, 0.04) * W);
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) if (y < t || y >= H - b || x < l || x >= W - rr) out[y * W + x] = 0.92;
  }
  const lo = rng.uniform(-0.04, 0.06),
    hi = rng.uniform(0.75, 0.95);
  const gamma = rng.uniform(0.8, 1.25);
  const sigma = rng.uniform(0.004, 0.025);
  const LUT = 4096;
  const lut = new Float32Array(LUT + 1);
  for (let k = 0; k <= LUT; k++) lut[k] = Math.pow(k / LUT, gamma);
  for (let i = 0; i < W * H; i++) {
    const v = lut[Math.round(clamp01((out[i] - lo) / (hi - lo)) * LUT)] + sigma * gauss(rng);
    out[i] = clamp01(v);
  }
  const probes = {} as Record<DemoClass, Probe>;
  for (const [k, p] of Object.entries(r.probes))
    probes[k as DemoClass] = { box: mapBox(p.box), ref: mapBox(p.ref), sign: p.sign };
  return {
    width: W,
    height: H,
    pixels: out,
    facts: r.facts,
    boxes: r.boxes.map((b) => ({ cls: b.cls, box: mapBox(b.box) })),
    probes,
    ctr: r.ctr,
  };
}

/** A crude lateral view (body, spine, heart blob): rows the MIMIC loader must skip. */
export function renderLateral(rng: Rng, W: number, H: number): Float32Array {
  const D = new Canvas(W, H, 0.04);
  ellipse(D, W / 2, 0.55 * H, 0.36 * W, 0.6 * H, 0.5, { edge: 5 });
  ellipse(D, 0.5 * W, 0.45 * H, 0.22 * W, 0.3 * H, -0.3, { edge: 4 });
  ellipse(D, 0.75 * W, 0.55 * H, 0.05 * W, 0.6 * H, 0.15, { edge: 3, power: 6 });
  ellipse(D, 0.4 * W, 0.6 * H, 0.13 * W, 0.12 * H, 0.25, { edge: 3 });
  for (let i = 0; i < W * H; i++) D.d[i] = clamp01(D.d[i] + 0.01 * gauss(rng));
  return D.d;
}
