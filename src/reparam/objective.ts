/**
 * L_eta = L ∘ Phi as an Objective in the new coordinates eta (Dinh et al. 2017, section 5.1), over
 * ANY inner objective (the GPU engine or the float64 reference):
 *   loss(eta)      = L(Phi(eta))
 *   gradient(eta)  = J^T grad L(Phi(eta))
 *   hvp(eta, v)    = J^T H(Phi(eta)) J v + (sum_i g_i hess Phi_i(eta)) v,   g = grad L(Phi(eta))
 * the exact Hessian of L ∘ Phi (chain rule twice; at a critical point g = 0 and only J^T H J is
 * left, the paper's display after Figure 5). Its vector space is float64 on the host
 * (HostVectorSpace(dimEta)), so every metric (Lanczos, Hutchinson, Hutch++, sharpness, ...) runs
 * unchanged in eta through hessianOperator(new ReparametrizedObjective(inner, phi), eta).
 *
 * Cost: Phi, J, J^T and the second-order term are evaluated on the host in float64, so every call
 * moves theta (when eta changes) and J v into the inner objective's space (space.write) and
 * H J v back (space.toArray): one upload and one readback of dimTheta numbers per HVP direction.
 * That transfer is the price of a host-side Phi; nothing else crosses. Phi(eta) is kept in one
 * inner vector that is rewritten only when eta changes, so the GPU engine's forward-state cache
 * (same vector, same version) still serves a run of HVPs, and g = grad L(Phi(eta)) is computed
 * once per eta (compared entry by entry with the last eta seen).
 * Counters: this objective's own counters count the calls made to it (forward for loss and
 * outputs, gradient, hvp, blockHvpDirections); the inner objective's counters count the passes
 * that really ran (one gradient per eta however many HVPs follow).
 * `spec` is the inner model's: it describes theta, not eta, so metrics that read the parameter
 * layout from the spec (per-layer masks) do not apply when dimEta != dimTheta.
 */
import { InputError } from "../errors.ts";
import type { LossKind, ModelSpec } from "../model.ts";
import type { Objective, PassCounters } from "../objective.ts";
import { zeroCounters } from "../objective.ts";
import { type SymmetricOperator, hessianOperator } from "../metrics/operator.ts";
import { HostVectorSpace } from "../hostVectorSpace.ts";
import { type Reparametrization, checkVector } from "./reparametrization.ts";

/** The two terms of the Hessian-vector product of L ∘ Phi (Dinh et al. 2017, section 5.1, the display under Figure 5), kept apart. */
export interface HvpTerms {
  /** J^T H(Phi(eta)) J v. */
  pullback: Float64Array;
  /** (sum_i g_i hess Phi_i(eta)) v, with g = grad L(Phi(eta)). */
  curvature: Float64Array;
}

export interface ReparametrizedObjectiveOptions {
  /** Dispose the inner objective in dispose() (default false: the caller owns it). */
  ownsInner?: boolean;
}

/** L_eta = L ∘ Phi as an Objective in the coordinates eta (Dinh et al. 2017, section 5.1): exact loss, gradient and Hessian-vector products by the chain rule over any inner objective, on float64 host vectors. See the module comment. */
export class ReparametrizedObjective<V> implements Objective<Float64Array> {
  readonly space: HostVectorSpace;
  readonly counters: PassCounters = zeroCounters();
  readonly spec: ModelSpec;
  readonly lossKind: LossKind;
  readonly sampleCount: number;
  private point: Float64Array | null = null;
  private thetaHost: Float64Array | null = null;
  private thetaInner: V | null = null;
  private lossValue: number | null = null;
  private innerGradient: Float64Array | null = null;

  /** L ∘ Phi over `inner` with Phi = `reparametrization` (its dimTheta must be the inner objective's parameter count). */
  constructor(
    readonly inner: Objective<V>,
    readonly reparametrization: Reparametrization,
    private readonly options: ReparametrizedObjectiveOptions = {},
  ) {
    if (inner.space.dim !== reparametrization.dimTheta) {
      throw new InputError(
        `${reparametrization.name} maps to ${reparametrization.dimTheta} parameters but the objective has ${inner.space.dim}`,
      );
    }
    this.space = new HostVectorSpace(reparametrization.dimEta);
    this.spec = inner.spec;
    this.lossKind = inner.lossKind;
    this.sampleCount = inner.sampleCount;
  }

  /** Phi(eta) on the host (a copy). */
  theta(eta: Float64Array): Float64Array {
    this.moveTo(eta);
    return Float64Array.from(this.thetaHost!);
  }

  /** grad L at Phi(eta), in theta coordinates (cached per eta; a copy). */
  async thetaGradient(eta: Float64Array): Promise<Float64Array> {
    return Float64Array.from(await this.ensureGradient(eta));
  }

  async loss(eta: Float64Array): Promise<number> {
    this.counters.forward++;
    const thetaV = this.moveTo(eta);
    if (this.lossValue === null) this.lossValue = await this.inner.loss(thetaV);
    return this.lossValue;
  }

  async gradient(eta: Float64Array, out: Float64Array): Promise<number> {
    this.counters.gradient++;
    const g = await this.ensureGradient(eta);
    out.set(this.reparametrization.vjp(eta, g));
    return this.lossValue!;
  }

  async hvp(eta: Float64Array, v: Float64Array, out: Float64Array): Promise<void> {
    this.counters.hvp++;
    const [t] = await this.terms(eta, [v], false);
    for (let i = 0; i < out.length; i++) out[i] = t.pullback[i] + t.curvature[i];
  }

  async hvpBlock(eta: Float64Array, vs: Float64Array[], outs: Float64Array[]): Promise<void> {
    if (vs.length !== outs.length) throw new InputError(`hvpBlock got ${vs.length} vectors but ${outs.length} outputs`);
    this.counters.blockHvpDirections += vs.length;
    const ts = await this.terms(eta, vs, true);
    ts.forEach((t, j) => {
      for (let i = 0; i < outs[j].length; i++) outs[j][i] = t.pullback[i] + t.curvature[i];
    });
  }

  /** The two terms of hess L_eta v separately (at a critical point the second vanishes). Counts as one HVP. */
  async hvpTerms(eta: Float64Array, v: Float64Array): Promise<HvpTerms> {
    this.counters.hvp++;
    return (await this.terms(eta, [v], false))[0];
  }

  async outputs(eta: Float64Array): Promise<Float64Array> {
    this.counters.forward++;
    return this.inner.outputs(this.moveTo(eta));
  }

  dispose(): void {
    if (this.thetaInner !== null) this.inner.space.dispose(this.thetaInner);
    this.thetaInner = null;
    this.point = null;
    if (this.options.ownsInner) this.inner.dispose();
  }

  /** Makes eta the current point: Phi(eta) in the inner vector, caches cleared when eta changed. */
  private moveTo(eta: Float64Array): V {
    const r = this.reparametrization;
    checkVector(r.name, "eta", eta, r.dimEta);
    if (this.point !== null && this.thetaInner !== null && sameEntries(this.point, eta)) return this.thetaInner;
    const theta = r.phi(eta);
    if (this.thetaInner === null) this.thetaInner = this.inner.space.zeros();
    this.inner.space.write(this.thetaInner, theta);
    this.point = Float64Array.from(eta);
    this.thetaHost = theta;
    this.lossValue = null;
    this.innerGradient = null;
    return this.thetaInner;
  }

  /** grad L at Phi(eta) in theta coordinates, computed once per eta (it also caches the loss). */
  private async ensureGradient(eta: Float64Array): Promise<Float64Array> {
    const thetaV = this.moveTo(eta);
    if (this.innerGradient === null) {
      const s = this.inner.space;
      const g = s.zeros();
      try {
        this.lossValue = await this.inner.gradient(thetaV, g);
        this.innerGradient = await s.toArray(g);
      } finally {
        s.dispose(g);
      }
    }
    return this.innerGradient;
  }

  /** pullback and curvature terms of hess L_eta v for each v (through hvpBlock when `block`). */
  private async terms(eta: Float64Array, vs: Float64Array[], block: boolean): Promise<HvpTerms[]> {
    const r = this.reparametrization;
    vs.forEach((v) => checkVector(r.name, "v", v, r.dimEta));
    const g = await this.ensureGradient(eta);
    const thetaV = this.thetaInner!;
    const s = this.inner.space;
    const ins = vs.map((v) => s.fromArray(r.jvp(eta, v)));
    const outs = vs.map(() => s.zeros());
    try {
      if (block) await this.inner.hvpBlock(thetaV, ins, outs);
      else for (let j = 0; j < vs.length; j++) await this.inner.hvp(thetaV, ins[j], outs[j]);
      const result: HvpTerms[] = [];
      for (let j = 0; j < vs.length; j++) {
        result.push({ pullback: r.vjp(eta, await s.toArray(outs[j])), curvature: r.curvature(eta, g, vs[j]) });
      }
      return result;
    } finally {
      for (const x of [...ins, ...outs]) s.dispose(x);
    }
  }
}

function sameEntries(a: Float64Array, b: Float64Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The exact Hessian of L ∘ Phi at eta as a symmetric operator (eta must not change while it is used). */
export function reparametrizedHessianOperator<V>(
  inner: Objective<V>,
  reparametrization: Reparametrization,
  eta: Float64Array,
): { operator: SymmetricOperator<Float64Array>; objective: ReparametrizedObjective<V> } {
  const objective = new ReparametrizedObjective(inner, reparametrization);
  return { operator: hessianOperator(objective, eta), objective };
}
