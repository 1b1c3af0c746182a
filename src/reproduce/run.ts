/**
 * Runs the claims of `flatness reproduce` in order, each timed and isolated: a claim that throws is
 * recorded as failed with its error, and the rest still run; then each claim's negative controls,
 * which must make it fail.
 */
import type { ClaimRecord, ControlRecord, ReproduceRecord } from "./html.ts";
import type { Claim, ReproduceContext } from "./context.ts";
import { gradientHessianScaling, notLipschitz, observationalEquivalence, volumeGrows } from "./claimsScaling.ts";
import { epsilonFullSpace, epsilonSubspace, secondOrder, sharpenTheorem4, sharpenTheorem5, traceFollows } from "./claimsHessian.ts";
import { criticalPoint, inputRepresentation, invariantMeasures, radialFlip, weightNormalization } from "./claimsReparam.ts";
import { keskarExperiment } from "./claimKeskar.ts";
import { keskarMnistExperiment } from "./claimKeskarMnist.ts";
import { inputLipschitz, powerFamilyFlip, theorem4Frobenius, theorem4Spectral, weightNormSharpness } from "./claimsPaper.ts";

/** The claims of Dinh et al. 2017 that `flatness reproduce` checks, in report order: T_alpha's observational equivalence and its effect on gradient, Hessian and volume (Theorems 2 and 3), Theorems 4 and 5, the ε-sharpness constructions (section 4.3), the reparametrizations (section 5), Keskar et al.'s experiment, the invariant measures, and Keskar et al.'s experiment on real digits with a CNN. */
export const CLAIMS: Claim[] = [
  observationalEquivalence,
  gradientHessianScaling,
  notLipschitz,
  volumeGrows,
  sharpenTheorem4,
  traceFollows,
  sharpenTheorem5,
  epsilonFullSpace,
  epsilonSubspace,
  secondOrder,
  weightNormalization,
  criticalPoint,
  radialFlip,
  inputRepresentation,
  keskarExperiment,
  invariantMeasures,
  keskarMnistExperiment,
  theorem4Frobenius,
  weightNormSharpness,
  powerFamilyFlip,
  inputLipschitz,
  theorem4Spectral,
];

/** Options of runClaims. */
export interface RunOptions {
  /** Claim ids to run (default all). */
  only?: number[];
  /** The backend's description, for the record. */
  adapter: string;
  /** The tool's version, for the record. */
  version: string;
  /** Called after each claim with its record, its index among the claims run and their count. */
  onClaim?: (record: ClaimRecord, index: number, total: number) => void;
}

/**
 * Runs the claims (all, or options.only) in order, each timed and isolated: a claim that throws is
 * recorded as failed and the rest still run. After each claim, each of its negative controls: the
 * claim again with ctx.control set, which must FAIL by measurement (a control whose run throws does
 * not hold: an error is not a measurement).
 */
export async function runClaims(ctx: ReproduceContext, options: RunOptions): Promise<ReproduceRecord> {
  const t0 = performance.now();
  const chosen = options.only ? CLAIMS.filter((c) => options.only!.includes(c.id)) : CLAIMS;
  const claims: ClaimRecord[] = [];
  for (const [i, claim] of chosen.entries()) {
    const start = performance.now();
    ctx.progress(`claim ${claim.id} (${i + 1}/${chosen.length}): ${claim.claim}`);
    let record: ClaimRecord;
    try {
      const outcome = await claim.run({ ...ctx, control: undefined, progress: (m) => ctx.progress(`  claim ${claim.id}: ${m}`) });
      record = { id: claim.id, claim: claim.claim, ...outcome, wallMs: performance.now() - start };
    } catch (e) {
      const err = e as Error;
      record = { id: claim.id, claim: claim.claim, measured: "-", expected: "-", pass: false, wallMs: performance.now() - start, error: `${err.name}: ${err.message}` };
    }
    record.controls = [];
    for (const control of claim.controls ?? []) {
      const begun = performance.now();
      ctx.progress(`  claim ${claim.id}: negative control ${control.id} (${control.breaks})`);
      let c: ControlRecord;
      try {
        const outcome = await claim.run({ ...ctx, control: control.id, progress: (m) => ctx.progress(`  claim ${claim.id} [${control.id}]: ${m}`) });
        c = { id: control.id, breaks: control.breaks, measured: outcome.measured, pass: outcome.pass, holds: !outcome.pass, wallMs: performance.now() - begun };
      } catch (e) {
        const err = e as Error;
        c = { id: control.id, breaks: control.breaks, measured: "-", pass: false, holds: false, wallMs: performance.now() - begun, error: `${err.name}: ${err.message}` };
      }
      ctx.progress(`  claim ${claim.id}: control ${control.id} ${c.holds ? "holds (the claim FAILS with it)" : "DOES NOT HOLD"}: ${c.error ?? c.measured}`);
      record.controls.push(c);
    }
    claims.push(record);
    options.onClaim?.(record, i, chosen.length);
  }
  return {
    tool: "flatness",
    version: options.version,
    date: new Date().toISOString(),
    adapter: options.adapter,
    quick: ctx.quick,
    seed: ctx.seed,
    wallMs: performance.now() - t0,
    claims,
  };
}
