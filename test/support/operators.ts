/**
 * Operator helpers shared by the curvature tests: matrices with a known spectrum, a dense matrix
 * from an operator, and a wrapper
 * that tracks the live vectors of its space (use after dispose and double dispose throw) and can
 * inject a failure at the n-th product.
 */
import type { VectorSpace } from "../../src/objective.ts";
import { Rng } from "../../src/random.ts";
import { dot } from "./numeric.ts";
import type { SymmetricOperator } from "../../src/metrics/operator.ts";

/** The dense matrix of `op`, column by column from products with unit vectors, symmetrized (rounding ~1e-16). */
export async function denseFromOperator(op: SymmetricOperator<Float64Array>): Promise<Float64Array> {
  const n = op.dim;
  const h = new Float64Array(n * n);
  const e = new Float64Array(n);
  const col = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    e.fill(0);
    e[i] = 1;
    await op.apply(e, col);
    h.set(col, i * n);
  }
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) h[i * n + j] = h[j * n + i] = 0.5 * (h[i * n + j] + h[j * n + i]);
  return h;
}

/** `inner` with a tracked space; products fail from the `failAtMatvec`-th on. */
export function counting(inner: SymmetricOperator<Float64Array>, failAtMatvec = Infinity) {
  const base = inner.space;
  const live = new Set<Float64Array>();
  let allocated = 0;
  const track = (v: Float64Array) => (live.add(v), allocated++, v);
  const alive = (...vs: Float64Array[]) => vs.forEach((v) => {
    if (!live.has(v)) throw new Error("vector used after dispose or not from this space");
  });
  const space: VectorSpace<Float64Array> = {
    dim: base.dim,
    zeros: () => track(base.zeros()),
    fromArray: (x) => track(base.fromArray(x)),
    toArray: (v) => (alive(v), base.toArray(v)),
    write: (v, x) => (alive(v), base.write(v, x)),
    dot: (a, b) => (alive(a, b), base.dot(a, b)),
    dots: (xs, y) => (alive(...xs, y), base.dots(xs, y)),
    axpy: (al, x, y) => (alive(x, y), base.axpy(al, x, y)),
    scale: (al, x) => (alive(x), base.scale(al, x)),
    copy: (s, d) => (alive(s, d), base.copy(s, d)),
    multiply: (x, y) => (alive(x, y), base.multiply(x, y)),
    linearCombination: (al, x, be, y) => (alive(x, y), base.linearCombination(al, x, be, y)),
    dispose: (v) => {
      if (!live.delete(v)) throw new Error("double dispose");
    },
  };
  let calls = 0;
  const op: SymmetricOperator<Float64Array> = {
    dim: inner.dim,
    space,
    get matvecs() {
      return inner.matvecs;
    },
    apply(v, out) {
      alive(v, out);
      if (++calls >= failAtMatvec) return Promise.reject(new Error("injected failure"));
      return inner.apply(v, out);
    },
    applyBlock(vs, outs) {
      alive(...vs, ...outs);
      calls += vs.length;
      if (calls >= failAtMatvec) return Promise.reject(new Error("injected failure"));
      return inner.applyBlock(vs, outs);
    },
  };
  return { op, live, calls: () => calls, allocated: () => allocated };
}

/** Seeded random orthonormal columns q[k] (Gram-Schmidt twice on Gaussian vectors). */
export function orthonormal(n: number, seed: number): Float64Array[] {
  const rng = new Rng(seed);
  const q: Float64Array[] = [];
  for (let j = 0; j < n; j++) {
    const v = rng.normals(n);
    for (let pass = 0; pass < 2; pass++) {
      for (const u of q) {
        const d = dot(u, v);
        for (let i = 0; i < n; i++) v[i] -= d * u[i];
      }
    }
    const norm = Math.sqrt(dot(v, v));
    q.push(v.map((x) => x / norm));
  }
  return q;
}

/** A = Q diag(eigenvalues) Q^T, row-major, with a seeded random orthogonal Q (returned too). */
export function knownSpectrum(eigenvalues: number[], seed = 5): { a: Float64Array; n: number; q: Float64Array[] } {
  const n = eigenvalues.length;
  const q = orthonormal(n, seed);
  const a = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    for (let i = 0; i < n; i++) {
      const li = eigenvalues[k] * q[k][i];
      for (let j = 0; j < n; j++) a[i * n + j] += li * q[k][j];
    }
  }
  return { a, n, q };
}
