/** Finite-difference checks shared by the reparametrization tests (float64, central differences). */
import { expect } from "vitest";
import type { Reparametrization } from "../../src/reparam/reparametrization.ts";
import { Rng } from "../../src/random.ts";
import { assertClose, dot } from "../support/numeric.ts";

export function axpy(alpha: number, x: ArrayLike<number>, y: ArrayLike<number>): Float64Array {
  return Float64Array.from(y, (yi, i) => yi + alpha * x[i]);
}

export function norm(x: ArrayLike<number>): number {
  return Math.sqrt(dot(x, x));
}

/** (f(x + h v) - f(x - h v)) / 2h for a vector-valued f. */
export function centralDifference(f: (x: Float64Array) => Float64Array, x: Float64Array, v: Float64Array, h: number): Float64Array {
  const plus = f(axpy(h, v, x));
  const minus = f(axpy(-h, v, x));
  return plus.map((p, i) => (p - minus[i]) / (2 * h));
}

/**
 * Phi(inverse(theta)) = theta (and inverse(Phi(eta)) = eta for a bijection); jvp against central differences of phi; vjp against the adjoint
 * identity u·Jv = (J^T u)·v and against differences of u·phi along every coordinate; curvature
 * against central differences of vjp(·, g) along v.
 */
export function checkReparametrization(r: Reparametrization, eta: Float64Array, seed: number, h = 1e-5, rtol = 1e-6, bijective = true): void {
  const rng = new Rng(seed);
  if (r.inverse) {
    const theta = r.phi(eta);
    if (bijective) assertClose(`${r.name}: inverse(phi(eta)) = eta`, r.inverse(theta), eta, 1e-12, 1e-13);
    assertClose(`${r.name}: phi(inverse(theta)) = theta`, r.phi(r.inverse(theta)), theta, 1e-12, 1e-13);
  }
  const v = rng.normals(r.dimEta);
  const u = rng.normals(r.dimTheta);
  const jv = r.jvp(eta, v);
  assertClose(`${r.name}: jvp vs differences`, jv, centralDifference((e) => r.phi(e), eta, v, h), rtol, 1e-10);
  const jtu = r.vjp(eta, u);
  expect(Math.abs(dot(u, jv) - dot(jtu, v))).toBeLessThanOrEqual(1e-12 * (norm(u) * norm(jv) + norm(jtu) * norm(v)));
  const fdJtu = new Float64Array(r.dimEta);
  for (let j = 0; j < r.dimEta; j++) {
    const e = new Float64Array(r.dimEta);
    e[j] = 1;
    const d = centralDifference((x) => r.phi(x), eta, e, h);
    fdJtu[j] = dot(u, d);
  }
  assertClose(`${r.name}: vjp vs differences`, jtu, fdJtu, rtol, 1e-10);
  const g = rng.normals(r.dimTheta);
  const curv = r.curvature(eta, g, v);
  assertClose(`${r.name}: curvature vs differences of vjp`, curv, centralDifference((e) => r.vjp(e, g), eta, v, h), rtol, 1e-9);
}
