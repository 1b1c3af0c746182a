/**
 * Stochastic trace-type estimates of a symmetric operator A from products A z with random probes
 * z (E[z z^T] = I: Rademacher signs by default, or standard normals):
 *   - hutchinsonTrace: tr(A) = E[z^T A z] (Hutchinson 1989), the mean of `samples` probe values
 *     with standard error std / sqrt(samples). No early stop on the relative change of the running
 *     mean (PyHessian's rule, which stops on noise).
 *   - hutchPlusPlusTrace: Hutch++ (Meyer, Musco, Musco, Woodruff 2021, Algorithm 1): with m
 *     products, S has s = floor(m/3) random columns, Q = orth(A S) (classical Gram-Schmidt twice
 *     in op.space; numerically dependent columns dropped), tr(A) = tr(Q^T A Q) (exact, rank(Q)
 *     products) + Hutchinson on (I - QQ^T) A (I - QQ^T) with the m - s - rank(Q) remaining
 *     probes (so exactly m products in all). The standard error is that of the residual part.
 *   - hessianDiagonal: diag(A) = E[z ⊙ A z] (Bekas, Kokiopoulou, Saad 2007), per entry mean and
 *     standard error. z is drawn on the host, so one toArray of A z per probe is all that comes
 *     back (dim floats a probe; the result is a host vector anyway).
 *   - squaredFrobeniusNorm: ||A||_F^2 = tr(A^T A) = E[||A z||^2].
 * Probes are drawn in order from `new Rng(seed)` on the host and uploaded (space.write into
 * reused vectors), so a seed gives the same probes on every device and for every block size.
 * Products go through op.applyBlock in blocks. Every temporary vector is disposed, also on error.
 */
import { Rng } from "../random.ts";
import type { VectorSpace } from "../objective.ts";
import type { Progress } from "./cost.ts";
import { countOption, dependenceTolerance, distributionOption, drawProbe, meanAndStderr, orthogonalizeTwice, type ProbeDistribution, seedOption } from "./lanczos.ts";
import type { SymmetricOperator } from "./operator.ts";
import { InputError } from "../errors.ts";

/** Options of hutchinsonTrace. */
export interface HutchinsonOptions {
  /** Probes (default 100). */
  samples?: number;
  /** Default "rademacher". */
  distribution?: ProbeDistribution;
  /** Seed of the probes (default 0). */
  seed?: number;
  /** Probes per applyBlock call (default 8). */
  blockSize?: number;
  /** Progress callback. */
  onProgress?: Progress;
}

/** A Hutchinson trace estimate (Hutchinson 1989): tr(A) = E[z^T A z]. */
export interface HutchinsonResult {
  /** The estimator that produced the result. */
  method: "hutchinson";
  /** The estimate of tr(A): the mean of the probe values. */
  estimate: number;
  /** Sample standard deviation of the probe values / sqrt(samples) (NaN for one sample). */
  stderr: number;
  /** Probes used. */
  samples: number;
  /** z_i^T A z_i per probe. */
  probeValues: number[];
  /** Distribution of the probes. */
  distribution: ProbeDistribution;
  /** Operator products used (one per probe). */
  matvecs: number;
  /** Wall-clock time in milliseconds. */
  wallMs: number;
}

/** Options of hutchPlusPlusTrace. */
export interface HutchPlusPlusOptions {
  /** Total products (default 99, at least 3). */
  matvecs?: number;
  /** Probe distribution (default "rademacher"). */
  distribution?: ProbeDistribution;
  /** Seed of the sketch and probes (default 0). */
  seed?: number;
  /** Progress callback. */
  onProgress?: Progress;
}

/** A Hutch++ trace estimate (Meyer, Musco, Musco, Woodruff 2021, Algorithm 1): exactPart + residualPart. */
export interface HutchPlusPlusResult {
  /** The estimator that produced the result. */
  method: "hutch++";
  /** The estimate of tr(A): exactPart + residualPart. */
  estimate: number;
  /** Standard error of the residual Hutchinson part (NaN with fewer than two residual probes). */
  stderr: number;
  /** rank(Q): sketch columns kept. */
  sketchRank: number;
  /** tr(Q^T A Q). */
  exactPart: number;
  /** Hutchinson estimate of tr((I - QQ^T) A (I - QQ^T)). */
  residualPart: number;
  /** Residual probes used. */
  residualSamples: number;
  /** Operator products used (exactly options.matvecs). */
  matvecs: number;
  /** Wall-clock time in milliseconds. */
  wallMs: number;
  /** Distribution of the sketch and residual probes. */
  distribution: ProbeDistribution;
}

/** Options of hessianDiagonal and squaredFrobeniusNorm. */
export interface ProbeOptions {
  /** Probes (default 100). */
  samples?: number;
  /** Seed of the probes (default 0). */
  seed?: number;
  /** Default "rademacher". */
  distribution?: ProbeDistribution;
  /** Progress callback. */
  onProgress?: Progress;
}

/** A diagonal estimate diag(A) = E[z ⊙ A z] (Bekas, Kokiopoulou, Saad 2007). */
export interface DiagonalResult {
  /** Per-entry estimate of diag(A), length dim (in the order of theta). */
  diagonal: Float64Array;
  /** Per-entry standard error (NaN for one sample). */
  stderr: Float64Array;
  /** Probes used. */
  samples: number;
  /** Operator products used (one per probe). */
  matvecs: number;
  /** Wall-clock time in milliseconds. */
  wallMs: number;
}

/** A squared Frobenius norm estimate ||A||_F^2 = E[||A z||^2]. */
export interface FrobeniusResult {
  /** Estimate of ||A||_F^2. */
  estimate: number;
  /** Standard error of the estimate (NaN for one sample). */
  stderr: number;
  /** Probes used. */
  samples: number;
  /** Operator products used (one per probe). */
  matvecs: number;
  /** Wall-clock time in milliseconds. */
  wallMs: number;
}

const BLOCK = 8;

/**
 * Draws `count` probes in blocks of `blockSize`, applies A and calls `visit(z, zv, az)` per probe
 * with the host probe, its device copy and A z (both owned here: read or copy them, do not keep).
 * `transform` may change the device probe before the product (Hutch++'s projection).
 */
async function forEachProbe<V>(
  op: SymmetricOperator<V>,
  rng: Rng,
  count: number,
  distribution: ProbeDistribution,
  blockSize: number,
  visit: (z: Float64Array, zv: V, az: V, index: number) => Promise<void>,
  transform?: (zv: V) => Promise<void>,
  progress?: (done: number) => void,
): Promise<void> {
  const s = op.space;
  const width = Math.min(blockSize, count);
  const zs: V[] = [];
  const azs: V[] = [];
  try {
    for (let j = 0; j < width; j++) {
      zs.push(s.zeros());
      azs.push(s.zeros());
    }
    for (let done = 0; done < count; done += width) {
      const b = Math.min(width, count - done);
      const host: Float64Array[] = [];
      for (let j = 0; j < b; j++) {
        host.push(drawProbe(rng, op.dim, distribution));
        s.write(zs[j], host[j]);
        if (transform) await transform(zs[j]);
      }
      await op.applyBlock(zs.slice(0, b), azs.slice(0, b));
      for (let j = 0; j < b; j++) await visit(host[j], zs[j], azs[j], done + j);
      progress?.(done + b);
    }
  } finally {
    for (const v of [...zs, ...azs]) s.dispose(v);
  }
}

/** tr(A) by Hutchinson's estimator (Hutchinson 1989): the mean of z^T A z over `samples` random probes, with its standard error. */
export async function hutchinsonTrace<V>(op: SymmetricOperator<V>, options: HutchinsonOptions = {}): Promise<HutchinsonResult> {
  const where = "hutchinson";
  const t0 = performance.now();
  const samples = countOption(where, "samples", options.samples, 100);
  const blockSize = countOption(where, "blockSize", options.blockSize, BLOCK);
  const distribution = distributionOption(where, options.distribution);
  const rng = new Rng(seedOption(where, options.seed));
  const matvecs0 = op.matvecs;
  const s = op.space;
  const probeValues: number[] = [];
  await forEachProbe(op, rng, samples, distribution, blockSize, async (_z, zv, az) => {
    probeValues.push(await s.dot(zv, az));
  }, undefined, (done) => options.onProgress?.(done / samples, `Hutchinson: ${done}/${samples} probes`));
  const { mean, stderr } = meanAndStderr(probeValues);
  return { method: "hutchinson", estimate: mean, stderr, samples, probeValues, distribution, matvecs: op.matvecs - matvecs0, wallMs: performance.now() - t0 };
}

/**
 * Orthonormalizes `columns` in place (classical Gram-Schmidt twice against the columns kept so
 * far); returns which were kept (the others are numerically dependent: their norm fell below
 * 1e-10 of what it was). The caller still owns every column.
 */
async function orthonormalize<V>(space: VectorSpace<V>, columns: V[]): Promise<boolean[]> {
  const kept: V[] = [];
  const keep: boolean[] = [];
  for (const c of columns) {
    const before = Math.sqrt(await space.dot(c, c));
    await orthogonalizeTwice(space, kept, c);
    const after = Math.sqrt(await space.dot(c, c));
    // A column whose residual after Gram-Schmidt is rounding noise (dependenceTolerance: 1.2e-4 of
    // its norm in f32) is dependent: normalised, that noise would break Q's orthonormality and
    // inflate tr(Q^T A Q) (seen on the GPU on a layer block whose rank is below the sketch size).
    // Dropping a column keeps the estimator unbiased: the residual Hutchinson part samples its share.
    const ok = before > 0 && after > dependenceTolerance(space) * before && Number.isFinite(after);
    if (ok) {
      space.scale(1 / after, c);
      kept.push(c);
    }
    keep.push(ok);
  }
  return keep;
}

/** tr(A) by Hutch++ (Meyer, Musco, Musco, Woodruff 2021, Algorithm 1): exact trace on a sketched subspace plus Hutchinson on its complement, in exactly `matvecs` products. */
export async function hutchPlusPlusTrace<V>(op: SymmetricOperator<V>, options: HutchPlusPlusOptions = {}): Promise<HutchPlusPlusResult> {
  const where = "hutch++";
  const t0 = performance.now();
  const m = countOption(where, "matvecs", options.matvecs, 99);
  if (m < 3) throw new InputError(`${where}: matvecs must be at least 3 (a third each for the sketch, its trace and the residual), got ${m}`);
  const distribution = distributionOption(where, options.distribution);
  const rng = new Rng(seedOption(where, options.seed));
  const matvecs0 = op.matvecs;
  const s = op.space;
  const sketch = Math.floor(m / 3);
  const report = (f: number, msg: string) => options.onProgress?.(f, `Hutch++: ${msg}`);
  const sv: V[] = [];
  let q: V[] = [];
  const aq: V[] = [];
  try {
    // A S, then Q = orth(A S).
    const as: V[] = [];
    q = as;
    for (let j = 0; j < sketch; j++) {
      sv.push(s.fromArray(drawProbe(rng, op.dim, distribution)));
      as.push(s.zeros());
    }
    await op.applyBlock(sv, as);
    for (const v of sv.splice(0)) s.dispose(v);
    const keep = await orthonormalize(s, as);
    q = as.filter((_, j) => keep[j]);
    for (const v of as.filter((_, j) => !keep[j])) s.dispose(v);
    report(1 / 3, `sketch rank ${q.length}`);
    // Exact part tr(Q^T A Q).
    for (let j = 0; j < q.length; j++) aq.push(s.zeros());
    if (q.length > 0) await op.applyBlock(q, aq);
    let exactPart = 0;
    for (let j = 0; j < q.length; j++) exactPart += await s.dot(q[j], aq[j]);
    for (const v of aq.splice(0)) s.dispose(v);
    report(2 / 3, "exact part done");
    // Residual part: z -> (I - QQ^T) z, value z^T P A P z.
    const residualSamples = m - sketch - q.length;
    const values: number[] = [];
    await forEachProbe(op, rng, residualSamples, distribution, BLOCK, async (_z, zv, az) => {
      values.push(await s.dot(zv, az));
    }, async (zv) => {
      const c = await Promise.all(q.map((u) => s.dot(u, zv)));
      c.forEach((ci, i) => s.axpy(-ci, q[i], zv));
    }, (done) => report(2 / 3 + done / (3 * residualSamples), `${done}/${residualSamples} residual probes`));
    const { mean, stderr } = values.length > 0 ? meanAndStderr(values) : { mean: 0, stderr: NaN };
    return {
      method: "hutch++",
      estimate: exactPart + mean,
      stderr,
      sketchRank: q.length,
      exactPart,
      residualPart: mean,
      residualSamples,
      matvecs: op.matvecs - matvecs0,
      wallMs: performance.now() - t0,
      distribution,
    };
  } finally {
    for (const v of [...sv, ...q, ...aq]) s.dispose(v);
  }
}

/** diag(A) by E[z ⊙ A z] (Bekas, Kokiopoulou, Saad 2007), per entry with its standard error. */
export async function hessianDiagonal<V>(op: SymmetricOperator<V>, options: ProbeOptions = {}): Promise<DiagonalResult> {
  const where = "hessian diagonal";
  const t0 = performance.now();
  const samples = countOption(where, "samples", options.samples, 100);
  const distribution = distributionOption(where, options.distribution);
  const rng = new Rng(seedOption(where, options.seed));
  const matvecs0 = op.matvecs;
  const n = op.dim;
  // Welford's running mean and sum of squared deviations, per entry.
  const mean = new Float64Array(n);
  const m2 = new Float64Array(n);
  await forEachProbe(op, rng, samples, distribution, BLOCK, async (z, _zv, az, index) => {
    const a = await op.space.toArray(az);
    const count = index + 1;
    for (let i = 0; i < n; i++) {
      const x = z[i] * a[i];
      const d = x - mean[i];
      mean[i] += d / count;
      m2[i] += d * (x - mean[i]);
    }
  }, undefined, (done) => options.onProgress?.(done / samples, `diagonal: ${done}/${samples} probes`));
  const stderr = new Float64Array(n);
  for (let i = 0; i < n; i++) stderr[i] = samples > 1 ? Math.sqrt(m2[i] / (samples - 1) / samples) : NaN;
  return { diagonal: mean, stderr, samples, matvecs: op.matvecs - matvecs0, wallMs: performance.now() - t0 };
}

/** ||A||_F^2 = tr(A^T A) = E[||A z||^2], the mean over random probes, with its standard error. */
export async function squaredFrobeniusNorm<V>(op: SymmetricOperator<V>, options: ProbeOptions = {}): Promise<FrobeniusResult> {
  const where = "frobenius norm";
  const t0 = performance.now();
  const samples = countOption(where, "samples", options.samples, 100);
  const distribution = distributionOption(where, options.distribution);
  const rng = new Rng(seedOption(where, options.seed));
  const matvecs0 = op.matvecs;
  const values: number[] = [];
  await forEachProbe(op, rng, samples, distribution, BLOCK, async (_z, _zv, az) => {
    values.push(await op.space.dot(az, az));
  }, undefined, (done) => options.onProgress?.(done / samples, `Frobenius norm: ${done}/${samples} probes`));
  const { mean, stderr } = meanAndStderr(values);
  return { estimate: mean, stderr, samples, matvecs: op.matvecs - matvecs0, wallMs: performance.now() - t0 };
}
