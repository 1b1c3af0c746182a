/**
 * The radial transformations of Dinh et al. 2017, Appendix A. For delta > 0, rho in ]0, delta[,
 * r-hat in ]0, delta[:
 *   psi(r) = r                                          r > delta (r not in [0, delta])
 *          = rho r / r-hat                              r in [0, r-hat]
 *          = (rho - delta)(r - delta)/(r-hat - delta) + delta     r in ]r-hat, delta]
 *   eta = g^{-1}(theta) = psi(r)/r (theta - theta-hat) + theta-hat,   r = ||theta - theta-hat||_2.
 * psi is continuous, piecewise linear and increasing (both slopes rho/r-hat and
 * (rho - delta)/(r-hat - delta) are positive), fixes 0 and every r >= delta, so g is the identity
 * outside the ball B(theta-hat, delta). Its inverse is psi with r-hat and rho exchanged, which is
 * Phi = g here (theta-radius q(s) from eta-radius s):
 *   q(s) = r-hat s / rho                                s in [0, rho]       m = r-hat/rho, n = p = 0
 *        = A s + B,  A = (r-hat - delta)/(rho - delta), B = delta (1 - A)   s in ]rho, delta]
 *                                                       m = A + B/s, n = -B/s^3, p = 3B/s^5
 *        = s                                            s > delta          m = 1, n = p = 0
 * (m = q/s, n = m'/s, p = n'/s as in ./radialMap.ts). Inside the inner ball Phi is linear with
 * J = (r-hat/rho) I, so there hess L_eta = (r-hat/rho)^2 H exactly (no second-order term): with
 * rho < r-hat a minimum at theta-hat becomes (r-hat/rho)^2 times sharper, with rho > r-hat flatter,
 * and nothing outside the ball changes. This is how ./rankingFlip.ts reorders two minima.
 * Phi is not differentiable on the spheres s = rho and s = delta (one-sided values are returned).
 */
import { InputError } from "../errors.ts";
import { RadialMap, type RadialProfile } from "./radialMap.ts";
import { checkOpenInterval } from "./reparametrization.ts";

export interface RadialTransformationOptions {
  /** theta-hat, the centre of the ball. */
  centre: ArrayLike<number>;
  /** Radius of the ball outside which nothing changes. */
  delta: number;
  /** r-hat in ]0, delta[: theta-radius of the inner ball. */
  rHat: number;
  /** rho in ]0, delta[: eta-radius the inner ball is mapped to. */
  rho: number;
}

/** psi(r, r-hat, delta, rho) of Appendix A. */
export function radialPsi(r: number, rHat: number, delta: number, rho: number): number {
  if (r > delta || r < 0) return r;
  if (r <= rHat) return (rho * r) / rHat;
  return ((rho - delta) * (r - delta)) / (rHat - delta) + delta;
}

/** psi'(r, r-hat, delta, rho) of Appendix A. */
export function radialPsiPrime(r: number, rHat: number, delta: number, rho: number): number {
  if (r > delta || r < 0) return 1;
  if (r <= rHat) return rho / rHat;
  return (rho - delta) / (rHat - delta);
}

/** The radial transformation of Dinh et al. 2017, Appendix A: within B(theta-hat, delta) the radius map psi sends the inner ball of radius r-hat to radius rho, making a minimum at theta-hat (r-hat/rho)² times sharper or flatter; the identity outside the ball. */
export class RadialTransformation extends RadialMap {
  /** Radius of the ball outside which nothing changes. */
  readonly delta: number;
  /** r-hat: theta-radius of the inner ball. */
  readonly rHat: number;
  /** rho: eta-radius the inner ball is mapped to. */
  readonly rho: number;
  private readonly slope: number;
  private readonly intercept: number;

  /** The transformation of `options`; InputError unless delta > 0 and r-hat, rho lie in ]0, delta[. */
  constructor(options: RadialTransformationOptions) {
    super("radial transformation", options.centre);
    const where = this.name;
    if (!(Number.isFinite(options.delta) && options.delta > 0)) {
      throw new InputError(`${where}: delta must be a positive finite radius, got ${options.delta}`);
    }
    checkOpenInterval(where, "r-hat", options.rHat, 0, options.delta);
    checkOpenInterval(where, "rho", options.rho, 0, options.delta);
    this.delta = options.delta;
    this.rHat = options.rHat;
    this.rho = options.rho;
    this.slope = (this.rHat - this.delta) / (this.rho - this.delta);
    this.intercept = this.delta * (1 - this.slope);
  }

  /** Whether a point (theta or eta: the ball is the same in both) lies strictly inside B(theta-hat, delta). */
  insideBall(point: ArrayLike<number>): boolean {
    let s = 0;
    for (let i = 0; i < this.dimTheta; i++) s += (point[i] - this.centre[i]) ** 2;
    return Math.sqrt(s) < this.delta;
  }

  /** The map is the identity at eta-radius s > delta. */
  protected override identityAt(s: number): boolean {
    return s > this.delta;
  }

  /** k(r) = psi(r) / r: eta - c = k(r) (theta - c) (at r = 0, rho / r-hat). */
  forwardFactor(r: number): number {
    return r === 0 ? this.rho / this.rHat : radialPsi(r, this.rHat, this.delta, this.rho) / r;
  }

  /** m, n, p of the inverse radius map q (psi with r-hat and rho exchanged) at eta-radius s; one-sided at the kinks s = rho and s = delta. */
  profile(s: number): RadialProfile {
    if (s <= this.rho) return { m: this.rHat / this.rho, n: 0, p: 0 };
    if (s <= this.delta) {
      const b = this.intercept;
      return { m: this.slope + b / s, n: -b / s ** 3, p: (3 * b) / s ** 5 };
    }
    return { m: 1, n: 0, p: 0 };
  }
}
