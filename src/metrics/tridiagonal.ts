/**
 * Small float64 host eigensolvers for the Krylov methods (Lanczos, stochastic Lanczos quadrature)
 * and the tests:
 *   - tridiagonalEigen: all eigenvalues of the symmetric tridiagonal T (diagonal alpha[m],
 *     off-diagonal beta[m-1]) with the first and last component of every eigenvector (what SLQ
 *     weights and Ritz residuals |beta_m s_{m,i}| need) and, optionally, the whole eigenvector
 *     matrix. Implicit symmetric QL with Wilkinson-type shifts ("tqli": Golub & Van Loan,
 *     Matrix Computations, 4th ed., section 8.3.5; Numerical Recipes section 11.4). Each Givens
 *     rotation mixes two columns of the accumulated eigenvector matrix row by row, so tracking
 *     only rows 0 and m-1 gives those components at O(m^2) cost instead of O(m^3).
 *   - symmetricEigen: all eigenpairs of a small dense symmetric matrix by the cyclic Jacobi method
 *     (Golub & Van Loan section 8.5.3), accurate to a few ulps of the largest eigenvalue.
 * Conventions: eigenvalues ascending; vectors are row-major [m, m] with vectors[r * m + i] the
 * r-th component of the i-th eigenvector (eigenvectors are the columns), each of unit norm.
 */
import { InputError } from "../errors.ts";

export interface TridiagonalEigen {
  /** Eigenvalues, ascending. */
  values: Float64Array;
  /** first[i]: component 0 of eigenvector i. */
  first: Float64Array;
  /** last[i]: component m-1 of eigenvector i. */
  last: Float64Array;
  /** Row-major [m, m], column i the eigenvector of values[i]; null unless asked for. */
  vectors: Float64Array | null;
}

export interface SymmetricEigen {
  /** Eigenvalues, ascending. */
  values: Float64Array;
  /** Row-major [n, n], column i the unit eigenvector of values[i]. */
  vectors: Float64Array;
}

const MAX_QL_ITERATIONS = 60;

/**
 * Eigen-decomposition of the symmetric tridiagonal matrix with diagonal alpha and off-diagonal
 * beta (beta[i] couples rows i and i+1; beta.length = alpha.length - 1, longer arrays are cut).
 * `vectors: true` (default) also returns the full eigenvector matrix.
 */
export function tridiagonalEigen(alpha: ArrayLike<number>, beta: ArrayLike<number>, options: { vectors?: boolean } = {}): TridiagonalEigen {
  const m = alpha.length;
  if (m === 0) throw new InputError("tridiagonal eigen: empty matrix (alpha has no entries)");
  if (beta.length < m - 1) throw new InputError(`tridiagonal eigen: beta has ${beta.length} entries, expected ${m - 1}`);
  const d = Float64Array.from(alpha);
  const e = new Float64Array(m);
  for (let i = 0; i + 1 < m; i++) e[i] = beta[i];
  for (let i = 0; i < m; i++) {
    if (!Number.isFinite(d[i]) || !Number.isFinite(e[i])) throw new InputError(`tridiagonal eigen: non-finite entry at ${i}`);
  }
  const full = options.vectors ?? true;
  // Rows of the accumulated rotation matrix Z (starts as the identity) that we track, stored by
  // column (col[j][t] = Z[rowIndex[t], j]) so that a rotation of columns j, j+1 runs contiguously.
  const rowIndex = full ? Array.from({ length: m }, (_, r) => r) : m === 1 ? [0] : [0, m - 1];
  const R = rowIndex.length;
  const col = Array.from({ length: m }, () => new Float64Array(R));
  rowIndex.forEach((r, t) => (col[r][t] = 1));

  for (let l = 0; l < m; l++) {
    let iter = 0;
    for (;;) {
      // Find the first negligible off-diagonal entry at or below l: T splits there.
      let k = l;
      for (; k < m - 1; k++) {
        const dd = Math.abs(d[k]) + Math.abs(d[k + 1]);
        if (Math.abs(e[k]) <= Number.EPSILON * dd || e[k] === 0) break;
      }
      if (k === l) break;
      if (++iter > MAX_QL_ITERATIONS) throw new Error(`tridiagonal eigen: QL did not converge in ${MAX_QL_ITERATIONS} iterations (m = ${m})`);
      // Shift from the leading 2x2 block (Wilkinson), applied implicitly.
      let g = (d[l + 1] - d[l]) / (2 * e[l]);
      let r = Math.hypot(g, 1);
      g = d[k] - d[l] + e[l] / (g + (g >= 0 ? r : -r));
      let s = 1;
      let c = 1;
      let p = 0;
      let i = k - 1;
      let underflow = false;
      for (; i >= l; i--) {
        const f = s * e[i];
        const b = c * e[i];
        r = Math.hypot(f, g);
        e[i + 1] = r;
        if (r === 0) {
          d[i + 1] -= p;
          e[k] = 0;
          underflow = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1] - p;
        r = (d[i] - g) * s + 2 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
        const zi = col[i];
        const zj = col[i + 1];
        for (let t = 0; t < R; t++) {
          const h = zj[t];
          zj[t] = s * zi[t] + c * h;
          zi[t] = c * zi[t] - s * h;
        }
      }
      if (underflow) continue;
      d[l] -= p;
      e[l] = g;
      e[k] = 0;
    }
  }

  const order = Array.from({ length: m }, (_, i) => i).sort((a, b) => d[a] - d[b]);
  const values = Float64Array.from(order, (i) => d[i]);
  const first = Float64Array.from(order, (j) => col[j][0]);
  const last = Float64Array.from(order, (j) => col[j][R - 1]);
  let vectors: Float64Array | null = null;
  if (full) {
    vectors = new Float64Array(m * m);
    for (let j = 0; j < m; j++) {
      const c = col[order[j]];
      for (let r = 0; r < m; r++) vectors[r * m + j] = c[r];
    }
  }
  return { values, first, last, vectors };
}

/**
 * All eigenpairs of a dense symmetric matrix (row-major [n, n]; only symmetric input is
 * meaningful, the strict upper triangle is read as the matrix) by cyclic Jacobi rotations.
 */
export function symmetricEigen(matrix: ArrayLike<number>, n: number): SymmetricEigen {
  if (!Number.isInteger(n) || n < 1) throw new InputError(`symmetric eigen: n must be a positive integer, got ${n}`);
  if (matrix.length !== n * n) throw new InputError(`symmetric eigen: matrix has ${matrix.length} entries, expected ${n}x${n}`);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      const v = matrix[i * n + j];
      if (!Number.isFinite(v)) throw new InputError(`symmetric eigen: non-finite entry at (${i}, ${j})`);
      a[i * n + j] = v;
      a[j * n + i] = v;
    }
  }
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let total = 0;
  for (let i = 0; i < n * n; i++) total += a[i] * a[i];
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off += a[i * n + j] * a[i * n + j];
    if (off <= 1e-32 * total || off === 0) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        // Rotation that zeroes a[p][q] (Golub & Van Loan Algorithm 8.5.1, symSchur2).
        const tau = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = (tau >= 0 ? 1 : -1) / (Math.abs(tau) + Math.sqrt(1 + tau * tau));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => a[x * n + x] - a[y * n + y]);
  const values = Float64Array.from(order, (i) => a[i * n + i]);
  const vectors = new Float64Array(n * n);
  for (let r = 0; r < n; r++) for (let j = 0; j < n; j++) vectors[r * n + j] = v[r * n + order[j]];
  return { values, vectors };
}
