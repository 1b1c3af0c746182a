/**
 * Demonstration of Dinh et al. 2017, section 5.1 and Appendix A: a radial transformation centred
 * at one of two minima reverses their flatness ranking (top Hessian eigenvalue) while leaving the
 * other minimum, and everything outside a ball around the centre, untouched.
 *
 * With the ball B(theta-hat, delta) and inner radii r-hat, rho (./radial.ts), Phi is linear with
 * J = (r-hat/rho) I inside the inner ball, so the eta-Hessian at the centre is exactly
 * (r-hat/rho)^2 H; outside the ball Phi is the identity. Choosing delta below the distance between
 * the minima and (r-hat/rho)^2 = margin * lambda_sharp / lambda_flat at the flatter one (or its
 * inverse at the sharper one) swaps the ranking by the factor `margin`. Top eigenvalues come from
 * lanczosEigenpairs on hessianOperator(new ReparametrizedObjective(...)), i.e. the generic path
 * every metric takes.
 *
 * Default problem: a teacher ReLU net [2, 4, 1] on 16 seeded Gaussian inputs with mse targets
 * f_teacher(x), so theta* = teacher is a global minimum (loss ~ 1e-16: the targets are rounded to
 * f32), and T_alpha(theta*) with alpha = (4, 1/4) (src/transforms/alphaScale.ts) is a second one:
 * same function, different Hessian (section 4). Any objective and pair of minima can be passed.
 */
import { InputError } from "../errors.ts";
import { initParameters } from "../init.ts";
import { mlpSpec } from "../model.ts";
import type { Objective } from "../objective.ts";
import { hessianOperator } from "../metrics/operator.ts";
import { lanczosEigenpairs } from "../metrics/spectrum.ts";
import { hostForward } from "../metrics/normBased.ts";
import { Rng } from "../random.ts";
import { ReferenceObjective } from "../reference/engine.ts";
import { alphaScale } from "../transforms/alphaScale.ts";
import { ReparametrizedObjective } from "./objective.ts";
import { RadialTransformation } from "./radial.ts";
import { dot } from "./reparametrization.ts";

export interface RankingProblem<V> {
  objective: Objective<V>;
  /** Two minima in theta, float64 on the host. */
  minima: [Float64Array, Float64Array];
  description: string;
}

export interface RadialRankingFlipOptions {
  /** Centre the transformation on the flatter minimum (sharpen it, default) or on the sharper one (flatten it). */
  centreOn?: "flatter" | "sharper";
  /** Ratio by which the reversed ranking is to hold, > 1 (default 4). */
  margin?: number;
  /** delta as a fraction of the distance between the minima, in (0, 1) (default 0.5). */
  deltaFraction?: number;
  /** Lanczos tolerance (default 1e-10) and seed (default 1). */
  tol?: number;
  seed?: number;
}

export interface MinimumReport {
  loss: number;
  /** ||grad L(theta)||: how critical the point is. */
  gradientNorm: number;
  /** Top Hessian eigenvalue in theta. */
  topEigenvalueTheta: number;
  /** Top eigenvalue of the Hessian of L ∘ Phi at eta = Phi^{-1}(theta). */
  topEigenvalueEta: number;
  /** Loss in eta (equal to the loss in theta: same function, same point). */
  lossEta: number;
  insideBall: boolean;
}

export interface RadialRankingFlipResult {
  problem: string;
  minima: [MinimumReport, MinimumReport];
  distance: number;
  radial: { centreIndex: 0 | 1; delta: number; rHat: number; rho: number; jacobianScale: number };
  /** Index of the flatter minimum (smaller top eigenvalue) in theta and in eta. */
  flatterInTheta: 0 | 1;
  flatterInEta: 0 | 1;
  flipped: boolean;
  matvecs: number;
}

/** The default problem: a teacher net (a global minimum of its own mse) and its T_alpha image. */
export function teacherMinima(): RankingProblem<Float64Array> {
  const spec = mlpSpec([2, 4, 1]);
  const teacher = initParameters(spec, 11);
  const rng = new Rng(5);
  const n = 16;
  const x = Float32Array.from({ length: n * 2 }, () => rng.normal());
  const targets = Float32Array.from(hostForward(spec, teacher, x).z[1]);
  const objective = new ReferenceObjective(spec, { n, features: 2, x, targets }, "mse");
  return {
    objective,
    minima: [teacher, alphaScale(spec, teacher, [4, 0.25])],
    description: "teacher ReLU net [2, 4, 1], 16 samples, mse on its own outputs; minima theta* and T_alpha(theta*), alpha = (4, 1/4)",
  };
}

async function topEigenvalue<V>(objective: Objective<V>, point: V, tol: number, seed: number) {
  const r = await lanczosEigenpairs(hessianOperator(objective, point), { k: 1, which: "LA", tol, seed, maxSteps: objective.space.dim });
  return { value: r.eigenvalues[0], matvecs: r.matvecs };
}

export async function radialRankingFlip<V = Float64Array>(
  problem?: RankingProblem<V>,
  options: RadialRankingFlipOptions = {},
): Promise<RadialRankingFlipResult> {
  const p = (problem ?? teacherMinima()) as RankingProblem<V>;
  const margin = options.margin ?? 4;
  const fraction = options.deltaFraction ?? 0.5;
  const tol = options.tol ?? 1e-10;
  const seed = options.seed ?? 1;
  if (!(margin > 1 && Number.isFinite(margin))) throw new InputError(`radialRankingFlip: margin must be a finite number > 1, got ${margin}`);
  if (!(fraction > 0 && fraction < 1)) throw new InputError(`radialRankingFlip: deltaFraction must lie in (0, 1), got ${fraction}`);
  const { objective, minima } = p;
  const s = objective.space;
  let matvecs = 0;

  const thetaStats = [];
  for (const theta of minima) {
    const t = s.fromArray(theta);
    const g = s.zeros();
    try {
      const loss = await objective.gradient(t, g);
      const top = await topEigenvalue(objective, t, tol, seed);
      matvecs += top.matvecs;
      thetaStats.push({ loss, gradientNorm: Math.sqrt(await s.dot(g, g)), top: top.value });
    } finally {
      s.dispose(t);
      s.dispose(g);
    }
  }
  const [l0, l1] = thetaStats.map((t) => t.top);
  if (!(l0 > 0 && l1 > 0)) throw new InputError(`radialRankingFlip: the top Hessian eigenvalues (${l0}, ${l1}) must be positive: pass two minima`);
  const flatterInTheta: 0 | 1 = l0 <= l1 ? 0 : 1;
  const flat = flatterInTheta, sharp = (1 - flat) as 0 | 1;
  const centreIndex: 0 | 1 = (options.centreOn ?? "flatter") === "flatter" ? flat : sharp;
  const diff = minima[0].map((v, i) => v - minima[1][i]);
  const distance = Math.sqrt(dot(diff, diff));
  if (!(distance > 0)) throw new InputError("radialRankingFlip: the two minima coincide");
  const delta = fraction * distance;
  const k = Math.sqrt((margin * thetaStats[sharp].top) / thetaStats[flat].top);
  // Centre on the flatter: sharpen it by k^2 (rho = r-hat/k). On the sharper: flatten it by k^2.
  const rHat = centreIndex === flat ? delta / 2 : delta / (2 * k);
  const rho = centreIndex === flat ? delta / (2 * k) : delta / 2;
  const radial = new RadialTransformation({ centre: minima[centreIndex], delta, rHat, rho });
  const reparam = new ReparametrizedObjective(objective, radial);
  const reports: MinimumReport[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const eta = radial.inverse(minima[i]);
      const top = await topEigenvalue(reparam, eta, tol, seed);
      matvecs += top.matvecs;
      reports.push({
        loss: thetaStats[i].loss,
        gradientNorm: thetaStats[i].gradientNorm,
        topEigenvalueTheta: thetaStats[i].top,
        topEigenvalueEta: top.value,
        lossEta: await reparam.loss(eta),
        insideBall: radial.insideBall(minima[i]),
      });
    }
  } finally {
    reparam.dispose();
  }
  const flatterInEta: 0 | 1 = reports[0].topEigenvalueEta <= reports[1].topEigenvalueEta ? 0 : 1;
  return {
    problem: p.description,
    minima: [reports[0], reports[1]],
    distance,
    radial: { centreIndex, delta, rHat, rho, jacobianScale: rHat / rho },
    flatterInTheta,
    flatterInEta,
    flipped: flatterInEta !== flatterInTheta,
    matvecs,
  };
}
