/**
 * Radial maps around a centre c: Phi(eta) = c + m(s) y with y = eta - c, s = ||y||_2 (the radial
 * transformations of Dinh et al. 2017, Appendix A, and the radial form of the Figure 5 family).
 * A subclass gives the profile of the INVERSE radius map (eta-radius s -> theta-radius q(s) =
 * m(s) s) through three cancellation-free scalars
 *   m(s),   n(s) = m'(s) / s,   p(s) = n'(s) / s,
 * and the forward factor k with eta = c + k(r) (theta - c), r = ||theta - c||.
 *
 * Derivation (indices i, j, k over coordinates; d_j s = y_j / s, so d_j m = m' y_j / s = n y_j
 * and d_k n = p y_k):
 *   Phi_i = c_i + m y_i
 *   d_j Phi_i = m delta_ij + n y_i y_j                       =>  J = m I + n y y^T  (symmetric)
 *   d_k d_j Phi_i = n (y_k delta_ij + y_j delta_ik + y_i delta_jk) + p y_i y_j y_k
 * so for the second-order term (sum_i g_i hess Phi_i) v, component j:
 *   n [ (y·v) g_j + (g·v) y_j + (g·y) v_j ] + p (y·v)(g·y) y_j.
 * At s = 0 every term of the curvature carries a factor y, so it is 0 there, and J = m(0) I.
 * Where the profile has kinks (Appendix A's psi at r-hat and delta) these are one-sided values
 * (the map is only piecewise smooth there).
 */
import { InputError } from "../errors.ts";
import { type Reparametrization, checkArguments, checkVector, dot } from "./reparametrization.ts";

/** The inverse radius map q at one eta-radius s, as three cancellation-free scalars (see the module comment). */
export interface RadialProfile {
  /** q(s) / s: theta - c = m y. */
  m: number;
  /** m'(s) / s. */
  n: number;
  /** n'(s) / s. */
  p: number;
}

/** A radial map Phi(eta) = c + m(s) (eta - c), s = ||eta - c||_2, around a centre c (Dinh et al. 2017, Appendix A, and the radial Figure 5 family); subclasses give the radius profile. */
export abstract class RadialMap implements Reparametrization {
  readonly dimEta: number;
  readonly dimTheta: number;
  /** The centre c. */
  readonly centre: Float64Array;

  /** A map named `name` (for messages) around `centre` (a non-empty finite vector). */
  constructor(readonly name: string, centre: ArrayLike<number>) {
    if (centre.length < 1) throw new InputError(`${name}: the centre is empty`);
    checkVector(name, "centre", centre, centre.length);
    this.centre = Float64Array.from(centre);
    this.dimEta = this.dimTheta = centre.length;
  }

  /** Whether the map is the identity at radius s (then points are copied bit for bit, not recomputed as c + (x - c)). */
  protected identityAt(_s: number): boolean {
    return false;
  }

  /** m, n, p of the inverse radius map at eta-radius s >= 0. */
  abstract profile(s: number): RadialProfile;
  /** k(r) with eta - c = k(r) (theta - c) at theta-radius r >= 0 (the paper's g^{-1}). */
  abstract forwardFactor(r: number): number;

  /** y = eta - c and s = ||y||_2. */
  private offset(eta: ArrayLike<number>): { y: Float64Array; s: number } {
    const y = new Float64Array(this.dimEta);
    for (let i = 0; i < y.length; i++) y[i] = eta[i] - this.centre[i];
    return { y, s: Math.sqrt(dot(y, y)) };
  }

  phi(eta: Float64Array): Float64Array {
    checkArguments(this, eta);
    const { y, s } = this.offset(eta);
    if (s === 0) return Float64Array.from(this.centre);
    if (this.identityAt(s)) return Float64Array.from(eta);
    const { m } = this.profile(s);
    return y.map((yi, i) => this.centre[i] + m * yi);
  }

  inverse(theta: Float64Array): Float64Array {
    checkVector(this.name, "theta", theta, this.dimTheta);
    const { y, s } = this.offset(theta);
    if (s === 0) return Float64Array.from(this.centre);
    if (this.identityAt(s)) return Float64Array.from(theta);
    const k = this.forwardFactor(s);
    return y.map((yi, i) => this.centre[i] + k * yi);
  }

  /** J v = m v + n (y·v) y. */
  jvp(eta: Float64Array, v: Float64Array): Float64Array {
    checkArguments(this, eta, { v });
    return this.applyJacobian(eta, v);
  }

  /** J is symmetric, so J^T u = J u. */
  vjp(eta: Float64Array, u: Float64Array): Float64Array {
    checkArguments(this, eta, { u });
    return this.applyJacobian(eta, u);
  }

  curvature(eta: Float64Array, g: Float64Array, v: Float64Array): Float64Array {
    checkArguments(this, eta, { g, v });
    const { y, s } = this.offset(eta);
    if (s === 0 || this.identityAt(s)) return new Float64Array(this.dimEta);
    const { n, p } = this.profile(s);
    const yv = dot(y, v), gv = dot(g, v), gy = dot(g, y);
    const out = new Float64Array(this.dimEta);
    for (let j = 0; j < out.length; j++) out[j] = n * (yv * g[j] + gv * y[j] + gy * v[j]) + p * yv * gy * y[j];
    return out;
  }

  /** J v = m v + n (y·v) y at eta (a copy of v where the map is the identity). */
  private applyJacobian(eta: Float64Array, v: Float64Array): Float64Array {
    const { y, s } = this.offset(eta);
    if (this.identityAt(s)) return Float64Array.from(v);
    const { m, n } = this.profile(s);
    const yv = s === 0 ? 0 : n * dot(y, v);
    return v.map((vi, i) => m * vi + yv * y[i]);
  }
}
