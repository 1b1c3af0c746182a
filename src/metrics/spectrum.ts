/**
 * Extreme eigenpairs of a symmetric operator (the Hessian, a layer block, a dense matrix):
 *   - lanczosEigenpairs: the Lanczos method with full reorthogonalization (./lanczos.ts; Golub &
 *     Van Loan section 10.1-10.3), no restarts: the k wanted Ritz pairs of T_m (largest
 *     algebraic "LA", smallest algebraic "SA", or largest magnitude "LM", as ARPACK names them),
 *     early stop once their Ritz residual estimates |beta_m s_{m,i}| are below
 *     tol * max(|theta_i|, 1e-3 max_j |theta_j|), then the Ritz vectors y_i = Q_m s_i and their
 *     TRUE residuals ||A y_i - theta_i y_i|| / ||y_i|| (k more products: on f32 GPUs the estimate
 *     can be optimistic); `converged` uses the true residuals.
 *   - powerIteration: deflated power iteration as in PyHessian (Yao et al. 2020): each iterate is
 *     orthogonalized against the eigenvectors already found, so it finds the largest-magnitude
 *     eigenvalues one after another; stop when the relative change of lambda AND the relative
 *     residual are below tol (hessian-eigenthings v1); for the p-th pair the residual is that of
 *     the deflated operator (I - UU^T) A (I - UU^T) the method works on, since the error of the
 *     pairs already found (U) bounds the true residual ||A v - lambda v|| from below; the true
 *     one is reported.
 * Start vectors are Gaussian from `new Rng(seed)`, drawn on the host and uploaded, so a seed gives
 * the same run on every device. Every temporary vector is disposed, also on error; returned
 * vectors (keepVectors) are unit-norm and owned by the caller.
 * With an exact multiple eigenvalue a single Krylov sequence sees one copy; further copies are
 * found only through restarts after a breakdown (see stopRule; tiny problems), so on large
 * operators "top k" counts distinct eigenvalues.
 */
import { InputError } from "../errors.ts";
import { Rng } from "../random.ts";
import type { Progress } from "./cost.ts";
import { choiceOption, countOption, lanczosRecurrence, type LanczosTridiagonal, positiveOption, seedOption } from "./lanczos.ts";
import type { SymmetricOperator } from "./operator.ts";
import { tridiagonalEigen } from "./tridiagonal.ts";

/** Which eigenvalues Lanczos returns (ARPACK's names): largest algebraic "LA", smallest algebraic "SA", largest magnitude "LM". */
export type EigenWhich = "LA" | "SA" | "LM";

/** Options of lanczosEigenpairs. */
export interface LanczosOptions {
  /** Eigenpairs wanted (default 1). */
  k?: number;
  /** Default "LA". */
  which?: EigenWhich;
  /** Lanczos steps at most (default min(dim, max(2k + 40, 3k))); >= k. */
  maxSteps?: number;
  /** Relative residual tolerance (default 1e-5). */
  tol?: number;
  /** Seed of the Gaussian start vector (default 0). */
  seed?: number;
  /** Return the Ritz vectors (the caller disposes them). */
  keepVectors?: boolean;
  /** Progress callback. */
  onProgress?: Progress;
}

/** Extreme eigenpairs of a symmetric operator by Lanczos with full reorthogonalization (Golub & Van Loan section 10.1-10.3). */
export interface LanczosResult<V> {
  /** The method that produced the result. */
  method: "lanczos";
  /** Which end of the spectrum was asked for. */
  which: EigenWhich;
  /** LA: descending; SA: ascending; LM: by descending |lambda|. */
  eigenvalues: number[];
  /** True residuals ||A y - lambda y|| / ||y||. */
  residuals: number[];
  /** Ritz estimates |beta_m s_{m,i}| at the last step. */
  ritzResiduals: number[];
  /** Per eigenpair: its true relative residual is within tol (or within working precision, 10 eps ||A||). */
  converged: boolean[];
  /** Lanczos steps taken (the size of T_m). */
  steps: number;
  /** Operator products used, the k residual checks included. */
  matvecs: number;
  /** Wall-clock time in milliseconds. */
  wallMs: number;
  /** keepVectors only: unit-norm Ritz vectors, one per eigenvalue; the caller disposes them. */
  vectors?: V[];
}

/** Options of powerIteration. */
export interface PowerIterationOptions {
  /** Eigenpairs wanted (default 1). */
  k?: number;
  /** Iterations per eigenpair at most (default 100). */
  maxIter?: number;
  /** Default 1e-4. */
  tol?: number;
  /** Seed of the Gaussian start vectors (default 0). */
  seed?: number;
  /** Return the eigenvectors (the caller disposes them). */
  keepVectors?: boolean;
  /** Progress callback. */
  onProgress?: Progress;
}

/** Largest-magnitude eigenpairs by deflated power iteration (PyHessian, Yao et al. 2020). */
export interface PowerIterationResult<V> {
  /** The method that produced the result. */
  method: "power";
  /** In the order found: by descending |lambda|. */
  eigenvalues: number[];
  /** True residuals ||A v - lambda v|| for the unit vector v of each pair. */
  residuals: number[];
  /** Per eigenpair: the change of lambda and the deflated residual both fell below tol within maxIter. */
  converged: boolean[];
  /** Iterations (products) per eigenpair. */
  iterations: number[];
  /** Operator products used. */
  matvecs: number;
  /** Wall-clock time in milliseconds. */
  wallMs: number;
  /** keepVectors only: unit-norm eigenvectors, one per eigenvalue; the caller disposes them. */
  vectors?: V[];
}

/** Relative floor of the convergence scale: eigenvalues near 0 are judged against 1e-3 ||A||. */
const SCALE_FLOOR = 1e-3;

/** Indices (into ascending `values`) of the k wanted ones, in output order. */
function wanted(values: Float64Array, k: number, which: EigenWhich): number[] {
  const idx = Array.from(values, (_, i) => i);
  if (which === "LA") idx.reverse();
  else if (which === "LM") idx.sort((a, b) => Math.abs(values[b]) - Math.abs(values[a]) || values[b] - values[a]);
  return idx.slice(0, k);
}

/** The k wanted Ritz values of T[from:m] and whether their estimates |beta_m s_{m,i}| are within tolerance. */
function ritzPairs(t: LanczosTridiagonal, from: number, k: number, which: EigenWhich, tol: number, norm: number) {
  const to = t.alpha.length;
  const e = tridiagonalEigen(t.alpha.slice(from, to), t.beta.slice(from, to - 1), { vectors: false });
  const bm = Math.abs(t.beta[to - 1]);
  const pick = wanted(e.values, Math.min(k, to - from), which);
  return {
    values: pick.map((i) => e.values[i]),
    converged: pick.every((i) => bm * Math.abs(e.last[i]) <= tol * Math.max(Math.abs(e.values[i]), SCALE_FLOOR * norm)),
  };
}

/**
 * Early stop. Without restarts: the k wanted Ritz pairs have converged. A first breakdown always
 * restarts (repeated eigenvalues may have further copies); block b after b restarts holds one copy
 * of each eigenvalue of multiplicity > b, so after a restart we stop once the new block's wanted
 * pairs have converged too and no longer change the wanted values of the blocks before it.
 */
function stopRule(k: number, which: EigenWhich, tol: number) {
  return (t: LanczosTridiagonal): boolean => {
    const m = t.alpha.length;
    if (t.breakdown ? t.blockStart === 0 : m < k || (m > 100 && m % 5 !== 0)) return false;
    const norm = t.alpha.reduce((acc, a, i) => Math.max(acc, Math.abs(a) + t.beta[i] + (i > 0 ? t.beta[i - 1] : 0)), 0);
    const all = ritzPairs(t, 0, k, which, tol, norm);
    if (!all.converged) return false;
    if (t.blockStart === 0) return true;
    if (t.blockStart < k || !ritzPairs(t, t.blockStart, k, which, tol, norm).converged) return false;
    const before = tridiagonalEigen(t.alpha.slice(0, t.blockStart), t.beta.slice(0, t.blockStart - 1), { vectors: false }).values;
    const old = wanted(before, k, which).map((i) => before[i]);
    return all.values.every((v, i) => Math.abs(v - old[i]) <= tol * Math.max(Math.abs(old[i]), SCALE_FLOOR * norm));
  };
}

/** The k extreme eigenpairs of a symmetric operator (options.which: LA, SA or LM) by Lanczos with full reorthogonalization and no restarts (Golub & Van Loan section 10.1-10.3); convergence is judged on true residuals. See the module comment. */
export async function lanczosEigenpairs<V>(op: SymmetricOperator<V>, options: LanczosOptions = {}): Promise<LanczosResult<V>> {
  const where = "lanczos";
  const t0 = performance.now();
  const n = op.dim;
  const k = countOption(where, "k", options.k, 1);
  if (k > n) throw new InputError(`${where}: k = ${k} exceeds the dimension ${n}`);
  const which = choiceOption(where, "which", options.which, ["LA", "SA", "LM"] as const, "LA");
  const maxSteps = Math.min(n, countOption(where, "maxSteps", options.maxSteps, Math.max(2 * k + 40, 3 * k)));
  if (maxSteps < k) throw new InputError(`${where}: maxSteps = ${maxSteps} is below k = ${k}`);
  const tol = positiveOption(where, "tol", options.tol, 1e-5);
  const seed = seedOption(where, options.seed);
  const s = op.space;
  const matvecs0 = op.matvecs;
  const rng = new Rng(seed);
  const start = rng.normals(n);

  const run = await lanczosRecurrence(op, start, {
    maxSteps,
    rng,
    onBreakdown: "restart",
    onStep: (m) => options.onProgress?.(m / maxSteps, `Lanczos step ${m}/${maxSteps}`),
    shouldStop: stopRule(k, which, tol),
  });

  const ys: V[] = [];
  const ays: V[] = [];
  try {
    const m = run.alpha.length;
    const e = tridiagonalEigen(run.alpha, run.beta.slice(0, m - 1));
    const pick = wanted(e.values, k, which);
    const bm = Math.abs(run.beta[m - 1]);
    const norm = e.values.reduce((acc, v) => Math.max(acc, Math.abs(v)), 0);
    const eigenvalues = pick.map((i) => e.values[i]);
    const ritzResiduals = pick.map((i) => bm * Math.abs(e.last[i]));
    for (const i of pick) {
      const y = s.zeros();
      ys.push(y);
      for (let j = 0; j < m; j++) {
        const c = e.vectors![j * m + i];
        if (c !== 0) s.axpy(c, run.basis[j], y);
      }
      ays.push(s.zeros());
    }
    for (const q of run.basis.splice(0)) s.dispose(q);
    await op.applyBlock(ys, ays);
    const residuals: number[] = [];
    for (let r = 0; r < ys.length; r++) {
      const yNorm = Math.sqrt(await s.dot(ys[r], ys[r]));
      s.linearCombination(-eigenvalues[r], ys[r], 1, ays[r]);
      residuals.push(Math.sqrt(await s.dot(ays[r], ays[r])) / yNorm);
      s.scale(1 / yNorm, ys[r]);
    }
    // Converged to the tolerance, or to working precision (10 eps ||A||: an eigenvalue at 0 in f32).
    const attainable = 10 * (s.epsilon ?? 0) * norm;
    const converged = residuals.map((res, r) => res <= Math.max(tol * Math.max(Math.abs(eigenvalues[r]), SCALE_FLOOR * norm), attainable));
    const result: LanczosResult<V> = {
      method: "lanczos",
      which,
      eigenvalues,
      residuals,
      ritzResiduals,
      converged,
      steps: m,
      matvecs: op.matvecs - matvecs0,
      wallMs: performance.now() - t0,
    };
    if (options.keepVectors) result.vectors = ys.splice(0);
    return result;
  } finally {
    for (const v of [...run.basis, ...ys, ...ays]) s.dispose(v);
  }
}

/** The k largest-magnitude eigenpairs of a symmetric operator by deflated power iteration, as PyHessian (Yao et al. 2020); stops when the relative change of lambda and the relative residual are below tol. See the module comment. */
export async function powerIteration<V>(op: SymmetricOperator<V>, options: PowerIterationOptions = {}): Promise<PowerIterationResult<V>> {
  const where = "power iteration";
  const t0 = performance.now();
  const n = op.dim;
  const k = countOption(where, "k", options.k, 1);
  if (k > n) throw new InputError(`${where}: k = ${k} exceeds the dimension ${n}`);
  const maxIter = countOption(where, "maxIter", options.maxIter, 100);
  const tol = positiveOption(where, "tol", options.tol, 1e-4);
  const seed = seedOption(where, options.seed);
  const s = op.space;
  const matvecs0 = op.matvecs;
  const rng = new Rng(seed);
  const found: V[] = [];
  const eigenvalues: number[] = [];
  const residuals: number[] = [];
  const converged: boolean[] = [];
  const iterations: number[] = [];
  let v: V | null = null;
  let av: V | null = null;
  try {
    for (let p = 0; p < k; p++) {
      v = s.fromArray(rng.normals(n));
      av = s.zeros();
      const deflate = async (x: V) => {
        const c = await Promise.all(found.map((u) => s.dot(u, x)));
        c.forEach((ci, i) => s.axpy(-ci, found[i], x));
      };
      await deflate(v);
      s.scale(1 / Math.sqrt(await s.dot(v, v)), v);
      let lambda = NaN;
      let residual = NaN;
      let ok = false;
      let it = 0;
      while (it < maxIter) {
        it++;
        await op.apply(v, av);
        const next = await s.dot(v, av);
        const residualNorm = async () => {
          s.axpy(-next, v!, av!);
          const r = Math.sqrt(await s.dot(av!, av!));
          s.axpy(next, v!, av!);
          return r;
        };
        residual = await residualNorm();
        // Deflate A v (PyHessian's orthnormal); v is orthogonal to the pairs found, so the
        // residual of the deflated operator (I - UU^T) A (I - UU^T) is ||(I - UU^T) A v - lambda v||.
        await deflate(av);
        const deflatedResidual = found.length > 0 ? await residualNorm() : residual;
        const change = Math.abs(next - lambda) / Math.abs(next);
        lambda = next;
        options.onProgress?.((p + it / maxIter) / k, `power iteration: eigenpair ${p + 1}/${k}, iteration ${it}`);
        if (lambda === 0 && deflatedResidual === 0) {
          ok = true; // A v = 0: an exact zero eigenvalue
          break;
        }
        if (change < tol && deflatedResidual < tol * Math.abs(lambda)) {
          ok = true;
          break;
        }
        if (it === maxIter) break;
        const na = Math.sqrt(await s.dot(av, av));
        if (!(na > 0)) break; // A v lies in the span of the pairs found: nothing left to iterate on
        s.linearCombination(1 / na, av, 0, v);
      }
      eigenvalues.push(lambda);
      residuals.push(residual);
      converged.push(ok);
      iterations.push(it);
      found.push(v);
      v = null;
      s.dispose(av);
      av = null;
    }
    const result: PowerIterationResult<V> = {
      method: "power",
      eigenvalues,
      residuals,
      converged,
      iterations,
      matvecs: op.matvecs - matvecs0,
      wallMs: performance.now() - t0,
    };
    if (options.keepVectors) result.vectors = found.splice(0);
    return result;
  } finally {
    for (const x of [...found, v, av]) if (x !== null) s.dispose(x);
  }
}
