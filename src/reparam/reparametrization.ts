/**
 * Reparametrizations theta = Phi(eta) of the parameter space (Dinh et al. 2017, section 5.1: the
 * paper's g, with eta = g^{-1}(theta)). The loss in the new coordinates is L_eta = L ∘ Phi and
 *   grad L_eta(eta)   = J^T grad L(Phi(eta)),                          J = dPhi/deta (dimTheta x dimEta)
 *   hess L_eta(eta) v = J^T H(Phi(eta)) J v + (sum_i g_i hess Phi_i(eta)) v,   g = grad L(Phi(eta))
 * (the display under Figure 5). At a critical point (g = 0) only J^T H J remains. Everything here
 * is float64 on the host; ./objective.ts moves vectors to and from the inner objective's space.
 */
import { InputError, assertFinite } from "../errors.ts";

/** A reparametrization theta = Phi(eta) of the parameter space (Dinh et al. 2017 section 5.1, the paper's g) with what the chain rule needs: Phi, its Jacobian products and the second-order term. */
export interface Reparametrization {
  /** Short name for messages and reports. */
  readonly name: string;
  /** Dimension of the new coordinates eta. */
  readonly dimEta: number;
  /** Dimension of the model parameters theta. */
  readonly dimTheta: number;
  /** theta = Phi(eta). */
  phi(eta: Float64Array): Float64Array;
  /** eta with Phi(eta) = theta, where such an eta exists (bijections, or a chosen preimage of a surjection). */
  inverse?(theta: Float64Array): Float64Array;
  /** J v (length dimTheta), J = dPhi/deta at eta. */
  jvp(eta: Float64Array, v: Float64Array): Float64Array;
  /** J^T u (length dimEta). */
  vjp(eta: Float64Array, u: Float64Array): Float64Array;
  /**
   * (sum_i g_i hess Phi_i(eta)) v (length dimEta): the second-order term of hess (L ∘ Phi), with g
   * the gradient of L at Phi(eta). Equivalently d/dt J(eta + t v)^T g at t = 0.
   */
  curvature(eta: Float64Array, g: Float64Array, v: Float64Array): Float64Array;
}

/** Throws InputError unless `values` has `length` finite entries. */
export function checkVector(where: string, name: string, values: ArrayLike<number>, length: number): void {
  if (values.length !== length) throw new InputError(`${where}: ${name} has ${values.length} entries, expected ${length}`);
  assertFinite(`${where}: ${name}`, values);
}

/** Checks the arguments of jvp / vjp / curvature against the map's dimensions. */
export function checkArguments(
  r: Reparametrization,
  eta: ArrayLike<number>,
  extra: { v?: ArrayLike<number>; u?: ArrayLike<number>; g?: ArrayLike<number> } = {},
): void {
  checkVector(r.name, "eta", eta, r.dimEta);
  if (extra.v) checkVector(r.name, "v (an eta-space vector)", extra.v, r.dimEta);
  if (extra.u) checkVector(r.name, "u (a theta-space covector)", extra.u, r.dimTheta);
  if (extra.g) checkVector(r.name, "g (the gradient in theta)", extra.g, r.dimTheta);
}

/** Throws InputError unless x is a finite number in the open interval (lo, hi). */
export function checkOpenInterval(where: string, name: string, x: number, lo: number, hi: number): void {
  if (!(Number.isFinite(x) && x > lo && x < hi)) {
    throw new InputError(`${where}: ${name} must lie in (${lo}, ${hi}), got ${x}`);
  }
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}
