/**
 * Symmetric linear operators: the seam between curvature algorithms (Lanczos, Hutchinson, SLQ,
 * ...) and what they measure. The GPU Hessian, the float64 reference Hessian, a dense matrix, a
 * parameter-subset restriction and (later) reparametrized Hessians all plug into the same code.
 * Vectors live in the operator's vector space (on the GPU for the GPU engine); algorithms only
 * read scalars back.
 */
import { InputError } from "../errors.ts";
import type { Objective, VectorSpace } from "../objective.ts";
import { HostVectorSpace } from "../hostVectorSpace.ts";
import type { ModelSpec } from "../model.ts";
import { parameterLayout } from "../model.ts";

/** A symmetric linear operator A on a vector space (the Hessian, the Gauss-Newton matrix, or a restriction of either), applied by matrix-free products. */
export interface SymmetricOperator<V> {
  /** Dimension n of the space A acts on. */
  readonly dim: number;
  /** The space of A's vectors. */
  readonly space: VectorSpace<V>;
  /** out <- A v */
  apply(v: V, out: V): Promise<void>;
  /** outs[j] <- A vs[j]; operators without a faster path loop over apply(). */
  applyBlock(vs: V[], outs: V[]): Promise<void>;
  /** Matrix-vector products done so far (block products count one per direction). */
  readonly matvecs: number;
}

/**
 * The operator of a product `apply` on `space`, counting products; `applyBlock` (one call for k
 * directions) when there is a faster path than k applications.
 */
function productOperator<V>(
  space: VectorSpace<V>,
  apply: (v: V, out: V) => Promise<void>,
  applyBlock?: (vs: V[], outs: V[]) => Promise<void>,
): SymmetricOperator<V> {
  let matvecs = 0;
  return {
    dim: space.dim,
    space,
    get matvecs() {
      return matvecs;
    },
    async apply(v, out) {
      matvecs++;
      await apply(v, out);
    },
    async applyBlock(vs, outs) {
      if (applyBlock) {
        matvecs += vs.length;
        await applyBlock(vs, outs);
        return;
      }
      for (let j = 0; j < vs.length; j++) {
        matvecs++;
        await apply(vs[j], outs[j]);
      }
    },
  };
}

/** The exact Hessian of `objective` at `theta` (theta must not change while the operator is used). */
export function hessianOperator<V>(objective: Objective<V>, theta: V): SymmetricOperator<V> {
  return productOperator(
    objective.space,
    (v, out) => objective.hvp(theta, v, out),
    (vs, outs) => objective.hvpBlock(theta, vs, outs),
  );
}

/**
 * The generalized Gauss-Newton matrix J^T (d²L/dz²) J at `theta` (positive semi-definite for the
 * losses here), on an objective that provides it: the float64 reference engine
 * (ReferenceObjective.gaussNewtonProduct). The GPU engine computes the exact Hessian only.
 */
export function gaussNewtonOperator<V>(
  objective: { space: VectorSpace<V>; gaussNewtonProduct(theta: V, v: V, out: V): Promise<void> },
  theta: V,
): SymmetricOperator<V> {
  return productOperator(objective.space, (v, out) => objective.gaussNewtonProduct(theta, v, out));
}

/** A dense symmetric float64 matrix, row-major [n, n] (tests, tiny problems). */
export function denseOperator(matrix: Float64Array, n: number): SymmetricOperator<Float64Array> {
  if (matrix.length !== n * n) throw new InputError(`dense operator: matrix has ${matrix.length} entries, expected ${n}x${n}`);
  return productOperator(new HostVectorSpace(n), (v, out) => {
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += matrix[i * n + j] * v[j];
      out[i] = s;
    }
    return Promise.resolve();
  });
}

/**
 * M A M with M the 0/1 diagonal mask of a parameter subset: its nonzero spectrum, trace and
 * diagonal are those of the corresponding principal block of A (e.g. one layer's Hessian block).
 * Vectors keep the full dimension, so every algorithm runs unchanged.
 */
export function restrictedOperator<V>(op: SymmetricOperator<V>, mask: V): SymmetricOperator<V> {
  const s = op.space;
  return {
    dim: op.dim,
    space: s,
    get matvecs() {
      return op.matvecs;
    },
    async apply(v, out) {
      const masked = s.zeros();
      try {
        s.copy(v, masked);
        s.multiply(mask, masked);
        await op.apply(masked, out);
        s.multiply(mask, out);
      } finally {
        s.dispose(masked);
      }
    },
    async applyBlock(vs, outs) {
      const masked = vs.map((v) => {
        const m = s.zeros();
        s.copy(v, m);
        s.multiply(mask, m);
        return m;
      });
      try {
        await op.applyBlock(masked, outs);
        for (const o of outs) s.multiply(mask, o);
      } finally {
        for (const m of masked) s.dispose(m);
      }
    },
  };
}

/**
 * The 0/1 mask of the parameters of the named layers ("0", "1", ... by Linear index k, or tensor
 * names such as "2.weight"), in the flat layout.
 */
export function layerMask(spec: ModelSpec, selection: string[]): Float64Array {
  const layout = parameterLayout(spec);
  const mask = new Float64Array(layout.dim);
  for (const item of selection) {
    const views = layout.views.filter((v) => v.name === item || String(v.layer) === item);
    if (views.length === 0) {
      throw new InputError(`no layer or tensor '${item}': layers are 0..${spec.layers.length - 1}, tensors ${layout.views.map((v) => v.name).join(", ")}`);
    }
    for (const v of views) mask.fill(1, v.offset, v.offset + v.size);
  }
  return mask;
}
