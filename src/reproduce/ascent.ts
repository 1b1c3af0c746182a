/**
 * A projected gradient ascent that returns its maximiser (claims 8 and 9 of `flatness reproduce`):
 * maximises L(x(z)) over a convex set of coordinates z (an l2 ball, a box, a subspace's ball) on the
 * engine, so the claim can check both the loss it reached and that the perturbation lies in the set
 * (the metric's own ascent, src/metrics/sharpness.ts, returns only the value).
 *
 * Steps: z <- P(z + s_t g / ||g||), g = dL/dz, with s_t = radius / 2 halved whenever a step does
 * not raise the loss; starts: z = 0 plus a 1e-3 radius nudge (the gradient vanishes at a minimum)
 * and `starts - 1` uniformly random points of the set.
 */
import type { Objective } from "../objective.ts";
import { withVectors } from "../objective.ts";
import { Rng } from "../random.ts";

/** The set and the map of an ascent: x(z) in parameter space and the pull-back of a parameter gradient. */
export interface AscentProblem {
  /** Coordinates' dimension. */
  dim: number;
  /** x(z): the parameters at coordinates z. */
  point(z: Float64Array): Float64Array;
  /** dL/dz from dL/dx at x(z). */
  pull(g: Float64Array): Float64Array;
  /** Projection onto the set. */
  project(z: Float64Array): Float64Array;
  /** A typical radius of the set (first step size). */
  radius: number;
}

/** What the ascent found. */
export interface AscentResult {
  /** The largest loss seen. */
  maxLoss: number;
  /** Its coordinates (in the set, up to rounding of the projection). */
  z: Float64Array;
  /** Loss evaluations (gradient passes). */
  evaluations: number;
}

/** Maximises L(point(z)) over the set by projected normalized-gradient ascent (see the module comment). */
export async function projectedAscent<V>(f: Objective<V>, problem: AscentProblem, options: { steps: number; starts: number; seed: number }): Promise<AscentResult> {
  const rng = new Rng(options.seed);
  let best = { maxLoss: -Infinity, z: new Float64Array(problem.dim) };
  let evaluations = 0;
  const s = f.space;
  const evaluate = (z: Float64Array) =>
    withVectors(f, [problem.point(z)], async ([x]) => {
      const g = s.zeros();
      try {
        const loss = await f.gradient(x, g);
        evaluations++;
        return { loss, grad: problem.pull(await s.toArray(g)) };
      } finally {
        s.dispose(g);
      }
    });
  for (let start = 0; start < options.starts; start++) {
    let z = problem.project(Float64Array.from(rng.normals(problem.dim), (u) => u * (start === 0 ? 1e-3 : 1) * problem.radius));
    let current = await evaluate(z);
    let step = problem.radius / 2;
    for (let t = 0; t < options.steps; t++) {
      const norm = Math.hypot(...current.grad);
      if (!(norm > 0)) break;
      const next = problem.project(z.map((v, i) => v + (step * current.grad[i]) / norm));
      const e = await evaluate(next);
      if (e.loss > current.loss) {
        z = next;
        current = e;
      } else {
        step /= 2;
      }
      if (current.loss > best.maxLoss) best = { maxLoss: current.loss, z: Float64Array.from(z) };
    }
    if (current.loss > best.maxLoss) best = { maxLoss: current.loss, z: Float64Array.from(z) };
  }
  return { ...best, evaluations };
}

/** Projection onto the l2 ball of radius r about 0. */
export function ballProjection(r: number): (z: Float64Array) => Float64Array {
  return (z) => {
    const n = Math.hypot(...z);
    return n <= r ? z : z.map((v) => (v * r) / n);
  };
}

/** Projection onto the box |z_i| <= half[i]. */
export function boxProjection(half: ArrayLike<number>): (z: Float64Array) => Float64Array {
  return (z) => z.map((v, i) => Math.max(-half[i], Math.min(half[i], v)));
}
