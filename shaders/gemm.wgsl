// gemm.wgsl: batched, strided matrix product with fused epilogue, register-blocked.
//   C[b][m, n] = mask'( alpha * sum_k A[b][m, k] * B[b][k, n]  (+ C_old[b][m, n])  (+ bias[b][n]) )
// where mask'(x) = x * phi'(Mask[b][m, n]), phi'(z) = z > 0 ? 1 : slope (ReLU: slope 0).
// Every operand is addressed as offset + b*strideBatch + row*strideRow + col*strideCol, so one
// kernel serves the forward product a·W^T, the backward products delta·W and delta^T·a, and the
// batched tangent products of block HVPs (stride 0 broadcasts an operand over the batch).
// Bindings: 0 A (read), 1 B (read), 2 bias (read), 3 mask (read), 4 C (read_write), 5 params (uniform).
// Workgroup WG_X x WG_Y threads, each computing TM rows x TN columns of C, the columns strided by
// WG_X (no workgroup memory: on software WebGPU register blocking is ~20x faster than
// shared-memory tiling, webgpu-notes.md).
// The k loop runs in order 0..K-1 for every output, so results are deterministic.
// CPU twin: ReferenceObjective's forward / backProject / accumulateLayerGradient (src/reference/engine.ts).

// #include "gemm_common.wgsl"

const TM: u32 = 4u;
const TN: u32 = 4u;
override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;


@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  // Columns interleaved across the x threads of a workgroup (thread x owns columns
  // c0 + x + j WG_X): neighbouring invocations, which software WebGPU runs in neighbouring SIMD
  // lanes, then read neighbouring elements of B and write neighbouring elements of C.
  let row0 = wid.y * WG_Y * TM + lid.y * TM;
  let colBase = wid.x * WG_X * TN + lid.x;
  let b = wid.z;
  if (row0 >= p.m || colBase >= p.n) {
    return;
  }
  let aBase = p.offA + b * p.sAb;
  let bBase = p.offB + b * p.sBb;
  // Clamp out-of-range rows/columns to the last valid one: loads stay in bounds without branches;
  // the duplicated results are simply not stored.
  var aRow: array<u32, TM>;
  var bCol: array<u32, TN>;
  for (var i = 0u; i < TM; i++) {
    aRow[i] = aBase + min(row0 + i, p.m - 1u) * p.sAm;
  }
  for (var j = 0u; j < TN; j++) {
    bCol[j] = bBase + min(colBase + j * WG_X, p.n - 1u) * p.sBn;
  }
  var acc: array<array<f32, TN>, TM>;
  for (var kk = 0u; kk < p.k; kk++) {
    var av: array<f32, TM>;
    var bv: array<f32, TN>;
    let aK = kk * p.sAk;
    let bK = kk * p.sBk;
    for (var i = 0u; i < TM; i++) {
      av[i] = A[aRow[i] + aK];
    }
    for (var j = 0u; j < TN; j++) {
      bv[j] = B[bCol[j] + bK];
    }
    for (var i = 0u; i < TM; i++) {
      for (var j = 0u; j < TN; j++) {
        acc[i][j] = fma(av[i], bv[j], acc[i][j]);
      }
    }
  }
  for (var i = 0u; i < TM; i++) {
    let row = row0 + i;
    if (row >= p.m) {
      break;
    }
    for (var j = 0u; j < TN; j++) {
      let col = colBase + j * WG_X;
      if (col >= p.n) {
        break;
      }
      storeOutput(acc[i][j], b, row, col);
    }
  }
}
