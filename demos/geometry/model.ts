/**
 * The numbers of the geometry page (no DOM, so the tests import it in Node), all float64:
 *
 * Figure 2 (section 3): a one-hidden-unit ReLU net f(x) = theta2 relu(theta1 x) without biases,
 * fitted by mse to the teacher f*(x) = x on x in {0.5, 1, 1.5, 2}. For theta1 > 0 the function is
 * (theta1 theta2) x, so the observationally equivalent parameters are the hyperbolas
 * theta1 theta2 = c, the level curves of L = m (c - 1)^2 with m = mean(x^2), and
 * T_alpha(theta) = (alpha theta1, theta2 / alpha) slides along them (Definition 5). The loss,
 * gradient and exact Hessian come from the float64 reference engine (ReferenceObjective);
 * epsilon-sharpness (Definition 2) is the largest loss increase over a dense polar grid of the disc.
 *
 * Figure 5 (section 5.1): a 1-D loss with three minima of about the same curvature,
 * L(theta) = sin^2(theta) + 0.02 theta^2, seen in eta = theta-hat + (|theta - theta-hat|^2 + b)^a
 * (theta - theta-hat) (src/reparam/powerFamily.ts, coordinate-wise on one coordinate): at a
 * critical point L_eta'' = L'' q'^2 with q = h^{-1} (section 5.1's J^T H J).
 *
 * Appendix A: the radial map psi(r, r-hat, delta, rho) and g^{-1} on the plane (src/reparam/radial.ts).
 */
import type { Dataset } from "../../src/data.ts";
import { mlpSpec } from "../../src/model.ts";
import { ReferenceObjective } from "../../src/reference/engine.ts";
import { CoordinatewisePowerFamily } from "../../src/reparam/powerFamily.ts";
import { radialPsi, RadialTransformation } from "../../src/reparam/radial.ts";

// ---------------------------------------------------------------------------------------------
// Figure 2

export const FIG2_INPUTS = [0.5, 1, 1.5, 2];
/** The base minimum theta* (theta1 theta2 = 1) that T_alpha moves. */
export const FIG2_BASE: [number, number] = [1, 1];
/** Level curves theta1 theta2 = c drawn in the plot (c = 1: the minima). */
export const FIG2_LEVELS = [0.25, 0.5, 1, 2, 4];

export function fig2Objective(): ReferenceObjective {
  const spec = mlpSpec([1, 1, 1], { bias: false });
  const x = Float32Array.from(FIG2_INPUTS);
  const data: Dataset = { n: x.length, features: 1, x, targets: Float32Array.from(FIG2_INPUTS) };
  return new ReferenceObjective(spec, data, "mse");
}

export interface Fig2Point {
  alpha: number;
  theta: [number, number];
  loss: number;
  gradient: [number, number];
  /** The exact Hessian [[h11, h12], [h12, h22]]. */
  hessian: [number, number, number];
  /** Its eigenvalues, largest first. */
  eigenvalues: [number, number];
  epsilon: number;
  /** max over the disc B(theta, epsilon) of L - L(theta), divided by 1 + L(theta) (Definition 2). */
  epsilonSharpness: number;
  /** Where that maximum is. */
  epsilonArgmax: [number, number];
}

function eigen2(a: number, b: number, d: number): [number, number] {
  const mean = (a + d) / 2;
  const r = Math.hypot((a - d) / 2, b);
  return [mean + r, mean - r];
}

/** Loss, gradient, Hessian and epsilon-sharpness at T_alpha(theta*) by the float64 engine. */
export async function fig2Point(f: ReferenceObjective, alpha: number, epsilon: number, base = FIG2_BASE): Promise<Fig2Point> {
  const theta = Float64Array.of(alpha * base[0], base[1] / alpha);
  const g = new Float64Array(2);
  const loss = await f.gradient(theta, g);
  const h1 = new Float64Array(2);
  const h2 = new Float64Array(2);
  await f.hvp(theta, Float64Array.of(1, 0), h1);
  await f.hvp(theta, Float64Array.of(0, 1), h2);
  const hessian: [number, number, number] = [h1[0], (h1[1] + h2[0]) / 2, h2[1]];
  // Definition 2 by brute force: 48 radii x 360 angles of the disc (the boundary included).
  let best = 0;
  let argmax: [number, number] = [theta[0], theta[1]];
  const p = new Float64Array(2);
  for (let i = 1; i <= 48; i++) {
    const r = (epsilon * i) / 48;
    for (let k = 0; k < 360; k++) {
      const t = (2 * Math.PI * k) / 360;
      p[0] = theta[0] + r * Math.cos(t);
      p[1] = theta[1] + r * Math.sin(t);
      const l = await f.loss(p);
      if (l - loss > best) {
        best = l - loss;
        argmax = [p[0], p[1]];
      }
    }
  }
  return {
    alpha,
    theta: [theta[0], theta[1]],
    loss,
    gradient: [g[0], g[1]],
    hessian,
    eigenvalues: eigen2(...hessian),
    epsilon,
    epsilonSharpness: best / (1 + loss),
    epsilonArgmax: argmax,
  };
}

/** The level curve theta1 theta2 = c over theta1 in [lo, hi] (theta2 beyond yMax left out). */
export function levelCurve(c: number, lo: number, hi: number, yMax: number, points = 240): { x: number[]; y: number[] } {
  const x: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < points; i++) {
    // Denser where the hyperbola is steep (small theta1).
    const t1 = lo * (hi / lo) ** (i / (points - 1));
    const t2 = c / t1;
    if (t2 <= yMax * 1.02) {
      x.push(t1);
      y.push(t2);
    }
  }
  return { x, y };
}

// ---------------------------------------------------------------------------------------------
// Figure 5

export const FIG5_RANGE: [number, number] = [-4.5, 4.5];
/** The regular grid in theta whose images are the plot's points. */
export const FIG5_GRID = 37;

export function fig5Loss(theta: number): number {
  return Math.sin(theta) ** 2 + 0.02 * theta * theta;
}
export function fig5LossPrime(theta: number): number {
  return Math.sin(2 * theta) + 0.04 * theta;
}
export function fig5LossSecond(theta: number): number {
  return 2 * Math.cos(2 * theta) + 0.04;
}

/** The three minima of fig5Loss, by Newton on L' from 0 and +-pi. */
export function fig5Minima(): number[] {
  return [-Math.PI, 0, Math.PI].map((t0) => {
    let t = t0;
    for (let i = 0; i < 50; i++) t -= fig5LossPrime(t) / fig5LossSecond(t);
    return t;
  });
}

export interface Fig5Settings {
  a: number;
  b: number;
  /** theta-hat. */
  centre: number;
}

export interface Fig5Minimum {
  theta: number;
  eta: number;
  loss: number;
  curvatureTheta: number;
  curvatureEta: number;
}

export interface Fig5Result extends Fig5Settings {
  /** eta of the regular theta grid, and the loss there (the same as at theta: same function). */
  gridTheta: number[];
  gridEta: number[];
  gridLoss: number[];
  /** The curve L_eta(eta) on a fine eta grid. */
  curveEta: number[];
  curveLoss: number[];
  /** L_eta at a few fixed eta (the tests' probes). */
  probes: { eta: number; theta: number; loss: number }[];
  minima: Fig5Minimum[];
  /** Index of the flattest and sharpest minimum in theta and in eta. */
  flattestTheta: number;
  sharpestTheta: number;
  flattestEta: number;
  sharpestEta: number;
}

export const FIG5_PROBES = [-3, -1.5, -0.5, 0.25, 1, 2.5];

export function fig5(settings: Fig5Settings): Fig5Result {
  const { a, b, centre } = settings;
  const map = new CoordinatewisePowerFamily({ centre: [centre], a, b });
  const phi = (eta: number) => map.phi(Float64Array.of(eta))[0];
  const eta = (theta: number) => map.inverse(Float64Array.of(theta))[0];
  const gridTheta = Array.from({ length: FIG5_GRID }, (_, i) => FIG5_RANGE[0] + ((FIG5_RANGE[1] - FIG5_RANGE[0]) * i) / (FIG5_GRID - 1));
  const gridEta = gridTheta.map(eta);
  const [lo, hi] = [gridEta[0], gridEta[gridEta.length - 1]];
  const curveEta = Array.from({ length: 801 }, (_, i) => lo + ((hi - lo) * i) / 800);
  const curveLoss = curveEta.map((e) => fig5Loss(phi(e)));
  const probes = FIG5_PROBES.map((e) => {
    const t = phi(e);
    return { eta: e, theta: t, loss: fig5Loss(t) };
  });
  const minima = fig5Minima().map((t): Fig5Minimum => {
    const e = eta(t);
    // dtheta/deta = q'(eta - centre) (the Jacobian of Phi), at a critical point L_eta'' = L'' q'^2.
    const dq = map.jvp(Float64Array.of(e), Float64Array.of(1))[0];
    return { theta: t, eta: e, loss: fig5Loss(t), curvatureTheta: fig5LossSecond(t), curvatureEta: fig5LossSecond(t) * dq * dq };
  });
  const argBy = (key: "curvatureTheta" | "curvatureEta", better: (x: number, y: number) => boolean) =>
    minima.reduce((best, m, i) => (better(m[key], minima[best][key]) ? i : best), 0);
  return {
    a,
    b,
    centre,
    gridTheta,
    gridEta,
    gridLoss: gridTheta.map(fig5Loss),
    curveEta,
    curveLoss,
    probes,
    minima,
    flattestTheta: argBy("curvatureTheta", (x, y) => x < y),
    sharpestTheta: argBy("curvatureTheta", (x, y) => x > y),
    flattestEta: argBy("curvatureEta", (x, y) => x < y),
    sharpestEta: argBy("curvatureEta", (x, y) => x > y),
  };
}

// ---------------------------------------------------------------------------------------------
// Appendix A

export interface RadialSettings {
  delta: number;
  rHat: number;
  rho: number;
}

export const RADIAL_PROBES = [0.1, 0.3, 0.5, 0.7, 0.9, 1.2];

export interface RadialResult extends RadialSettings {
  /** psi on [0, 1.5 delta]. */
  r: number[];
  psi: number[];
  /** psi at RADIAL_PROBES (fractions of delta). */
  probes: { r: number; psi: number }[];
  /** Grid lines of the theta plane around theta-hat = 0 mapped by g^{-1}, as polylines split by NaN. */
  gridX: number[];
  gridY: number[];
  /** The circles r = r-hat and r = delta in theta, mapped (to rho and delta). */
  inner: { x: number[]; y: number[] };
  outer: { x: number[]; y: number[] };
  /** (r-hat / rho)^2: the factor on the Hessian of a minimum at theta-hat, in eta. */
  hessianFactor: number;
}

export function radial(settings: RadialSettings): RadialResult {
  const { delta, rHat, rho } = settings;
  const map = new RadialTransformation({ centre: [0, 0], delta, rHat, rho });
  const r = Array.from({ length: 301 }, (_, i) => (1.5 * delta * i) / 300);
  const gInv = (x: number, y: number) => map.inverse(Float64Array.of(x, y));
  const extent = 1.5 * delta;
  const lines = 16;
  const samples = 121;
  const gridX: number[] = [];
  const gridY: number[] = [];
  for (let k = 0; k <= lines; k++) {
    const c = -extent + (2 * extent * k) / lines;
    for (const vertical of [true, false]) {
      for (let i = 0; i < samples; i++) {
        const t = -extent + (2 * extent * i) / (samples - 1);
        const p = vertical ? gInv(c, t) : gInv(t, c);
        gridX.push(p[0]);
        gridY.push(p[1]);
      }
      gridX.push(NaN);
      gridY.push(NaN);
    }
  }
  const circle = (radius: number) => {
    const x: number[] = [];
    const y: number[] = [];
    for (let i = 0; i <= 180; i++) {
      const t = (2 * Math.PI * i) / 180;
      const p = gInv(radius * Math.cos(t), radius * Math.sin(t));
      x.push(p[0]);
      y.push(p[1]);
    }
    return { x, y };
  };
  return {
    ...settings,
    r,
    psi: r.map((v) => radialPsi(v, rHat, delta, rho)),
    probes: RADIAL_PROBES.map((f) => ({ r: f * delta, psi: radialPsi(f * delta, rHat, delta, rho) })),
    gridX,
    gridY,
    inner: circle(rHat),
    outer: circle(delta),
    hessianFactor: (rHat / rho) ** 2,
  };
}
