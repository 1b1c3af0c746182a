/**
 * The one-dimensional family of Dinh et al. 2017, Figure 5:
 *   eta = (|theta - theta-hat|^2 + b)^a (theta - theta-hat),   b >= 0, a > -1/2,
 * applied coordinate-wise (each coordinate on its own) or radially (|.| the Euclidean norm of the
 * whole vector). This is eta(theta) = g^{-1}(theta); the reparametrization Phi = g is its inverse,
 * found by solving the scalar equation h(r) = s for r, with
 *   h(r)   = (r^2 + b)^a r                     (odd in r)
 *   h'(r)  = (r^2 + b)^(a-1) ((1 + 2a) r^2 + b)
 *   h''(r) = 2a r (r^2 + b)^(a-2) ((1 + 2a) r^2 + 3b).
 * For a > -1/2 and b >= 0, h' > 0 for r != 0 and h(r) ~ r^(1+2a) -> infinity, so h is an increasing
 * bijection of R; a <= -1/2 (h bounded or not monotone) and b < 0 (h undefined near 0) are refused.
 * The inverse q = h^{-1} has q'(s) = 1/h'(q(s)) and q''(s) = -h''(q(s)) q'(s)^3.
 * With b = 0 and a != 0, h'(0) is 0 or infinite: Phi is continuous but not differentiable at the
 * centre, and derivatives there throw (take b > 0).
 *
 * Coordinate-wise: Phi_i(eta) = c_i + q(eta_i - c_i); J = diag(q'(y_i)); the second-order term is
 * diagonal too: (sum_i g_i hess Phi_i v)_j = g_j q''(y_j) v_j.
 * Radially (./radialMap.ts): with r = q(s), w = r^2 + b, and s = h(r) = w^a r,
 *   m = r/s = w^(-a)
 *   n = m'(s)/s = -2a w^(-a-1) (r/s) q' = -2a w^(-2a-1) q'
 *   p = n'(s)/s = 4a m [ (2a+1) w^(-2a-2) q'^2 + a w^(-a-3) ((1+2a) r^2 + 3b) q'^3 ]
 * (differentiate n through r(s) and q'(s), and use q''/s = -2a m w^(a-2) ((1+2a) r^2 + 3b) q'^3):
 * no cancellation, so small radii are as accurate as large ones.
 */
import { InputError } from "../errors.ts";
import { RadialMap, type RadialProfile } from "./radialMap.ts";
import { type Reparametrization, checkArguments, checkVector } from "./reparametrization.ts";

/** Options of powerFamily: the one-parameter family of Dinh et al. 2017, Figure 5. */
export interface PowerFamilyOptions {
  /** theta-hat. */
  centre: ArrayLike<number>;
  /** Exponent, a > -1/2 (a > 0 stretches eta away from the centre: flatter there; a < 0 sharper). */
  a: number;
  /** Offset b >= 0 (b > 0 keeps Phi smooth at the centre, where J = b^(-a) I). */
  b: number;
  /** "radial" (default): on the whole vector; "coordinatewise": on each coordinate. */
  mode?: "radial" | "coordinatewise";
}

/** The scalar map h of Figure 5, its derivatives and its inverse (safeguarded Newton). */
export class PowerScalar {
  /** h(r) = (r² + b)^a r with a > -1/2 and b >= 0 (InputError otherwise). */
  constructor(readonly a: number, readonly b: number) {
    if (!Number.isFinite(a) || !(a > -0.5)) {
      throw new InputError(`Figure 5 family: a must be finite and > -1/2 (else eta(theta) is bounded or not monotone, so not invertible), got ${a}`);
    }
    if (!Number.isFinite(b) || !(b >= 0)) throw new InputError(`Figure 5 family: b must be finite and >= 0, got ${b}`);
  }
  /** h(r) = (r² + b)^a r. */
  h(r: number): number {
    return (r * r + this.b) ** this.a * r;
  }
  /** h'(r) = (r² + b)^(a-1) ((1 + 2a) r² + b). */
  dh(r: number): number {
    const w = r * r + this.b;
    return w ** (this.a - 1) * ((1 + 2 * this.a) * r * r + this.b);
  }
  /** h''(r) = 2a r (r² + b)^(a-2) ((1 + 2a) r² + 3b). */
  ddh(r: number): number {
    const w = r * r + this.b;
    return 2 * this.a * r * w ** (this.a - 2) * ((1 + 2 * this.a) * r * r + 3 * this.b);
  }
  /** Whether derivatives exist at r (all r except r = 0 when b = 0 and a != 0). */
  smoothAt(r: number): boolean {
    return r !== 0 || this.b > 0 || this.a === 0;
  }
  /** q(s) = h^{-1}(s) for any real s (odd). */
  inverse(s: number): number {
    if (s < 0) return -this.inverse(-s);
    if (s === 0 || this.a === 0) return s;
    if (this.b === 0) return s ** (1 / (1 + 2 * this.a));
    let lo = 0;
    let hi = 1;
    for (let i = 0; this.h(hi) < s; i++) {
      if (i > 2100 || !Number.isFinite(this.h(hi))) throw new InputError(`Figure 5 family: cannot bracket h^{-1}(${s}) (a = ${this.a}, b = ${this.b})`);
      lo = hi;
      hi *= 2;
    }
    // Start from the small-s solution s b^(-a), kept inside the bracket.
    let r = Math.min(Math.max(s * this.b ** -this.a, lo), hi);
    for (let it = 0; it < 200; it++) {
      const f = this.h(r) - s;
      if (f === 0) return r;
      if (f > 0) hi = r;
      else lo = r;
      let next = r - f / this.dh(r);
      if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
      if (Math.abs(next - r) <= 4 * Number.EPSILON * Math.abs(next) || hi - lo <= 4 * Number.EPSILON * hi) return next;
      r = next;
    }
    return r;
  }
}

function notSmooth(where: string, a: number): never {
  throw new InputError(`${where}: with b = 0 and a = ${a}, Phi is not differentiable at the centre (h'(0) is ${a > 0 ? "0" : "infinite"}); use b > 0 or another point`);
}

/** Radial form: Phi(eta) = c + q(s)/s (eta - c). */
export class RadialPowerFamily extends RadialMap {
  /** The scalar map h (exponent a, offset b). */
  readonly scalar: PowerScalar;
  /** The radial Figure 5 map around options.centre. */
  constructor(options: PowerFamilyOptions) {
    super("Figure 5 family (radial)", options.centre);
    this.scalar = new PowerScalar(options.a, options.b);
  }
  /** k(r) = (r² + b)^a: eta - c = k(r) (theta - c). */
  forwardFactor(r: number): number {
    return (r * r + this.scalar.b) ** this.scalar.a;
  }
  /** m, n, p of q = h^{-1} at eta-radius s (see the module comment); throws where Phi is not differentiable. */
  profile(s: number): RadialProfile {
    const { a, b } = this.scalar;
    const r = this.scalar.inverse(s);
    if (!this.scalar.smoothAt(r)) notSmooth(this.name, a);
    const w = r * r + b;
    const m = w ** -a;
    const dq = 1 / this.scalar.dh(r);
    const n = -2 * a * w ** (-2 * a - 1) * dq;
    const p = 4 * a * m * ((2 * a + 1) * w ** (-2 * a - 2) * dq * dq + a * w ** (-a - 3) * ((1 + 2 * a) * r * r + 3 * b) * dq ** 3);
    return { m, n, p };
  }
}

/** Coordinate-wise form: Phi_i(eta) = c_i + q(eta_i - c_i). */
export class CoordinatewisePowerFamily implements Reparametrization {
  readonly name = "Figure 5 family (coordinate-wise)";
  readonly dimEta: number;
  readonly dimTheta: number;
  /** The centre theta-hat. */
  readonly centre: Float64Array;
  /** The scalar map h (exponent a, offset b). */
  readonly scalar: PowerScalar;

  /** The coordinate-wise Figure 5 map around options.centre. */
  constructor(options: PowerFamilyOptions) {
    if (options.centre.length < 1) throw new InputError(`${this.name}: the centre is empty`);
    checkVector(this.name, "centre", options.centre, options.centre.length);
    this.centre = Float64Array.from(options.centre);
    this.dimEta = this.dimTheta = this.centre.length;
    this.scalar = new PowerScalar(options.a, options.b);
  }

  phi(eta: Float64Array): Float64Array {
    checkArguments(this, eta);
    return eta.map((e, i) => this.centre[i] + this.scalar.inverse(e - this.centre[i]));
  }

  inverse(theta: Float64Array): Float64Array {
    checkVector(this.name, "theta", theta, this.dimTheta);
    return theta.map((t, i) => this.centre[i] + this.scalar.h(t - this.centre[i]));
  }

  /** q'(y_i) and q''(y_i) for every coordinate. */
  private derivatives(eta: Float64Array): { dq: Float64Array; ddq: Float64Array } {
    const dq = new Float64Array(this.dimEta);
    const ddq = new Float64Array(this.dimEta);
    for (let i = 0; i < dq.length; i++) {
      const r = this.scalar.inverse(eta[i] - this.centre[i]);
      if (!this.scalar.smoothAt(r)) notSmooth(`${this.name}, coordinate ${i}`, this.scalar.a);
      dq[i] = 1 / this.scalar.dh(r);
      ddq[i] = -this.scalar.ddh(r) * dq[i] ** 3;
    }
    return { dq, ddq };
  }

  jvp(eta: Float64Array, v: Float64Array): Float64Array {
    checkArguments(this, eta, { v });
    const { dq } = this.derivatives(eta);
    return v.map((vi, i) => dq[i] * vi);
  }

  vjp(eta: Float64Array, u: Float64Array): Float64Array {
    checkArguments(this, eta, { u });
    const { dq } = this.derivatives(eta);
    return u.map((ui, i) => dq[i] * ui);
  }

  curvature(eta: Float64Array, g: Float64Array, v: Float64Array): Float64Array {
    checkArguments(this, eta, { g, v });
    const { ddq } = this.derivatives(eta);
    return v.map((vi, i) => g[i] * ddq[i] * vi);
  }
}

/** The Figure 5 reparametrization in the chosen mode (default radial). */
export function powerFamily(options: PowerFamilyOptions): RadialPowerFamily | CoordinatewisePowerFamily {
  const mode = options.mode ?? "radial";
  if (mode === "radial") return new RadialPowerFamily(options);
  if (mode === "coordinatewise") return new CoordinatewisePowerFamily(options);
  throw new InputError(`Figure 5 family: mode must be "radial" or "coordinatewise", got ${mode}`);
}
