// gemm_tiled.wgsl: the same product and epilogue as gemm.wgsl, for hardware GPUs: each workgroup
// of 16 x 16 threads computes a 64 x 64 tile of C, staging 16-deep slices of A and B in workgroup
// memory (8 KiB) so each global load feeds 64 multiply-adds; each thread keeps a 4 x 4 block of
// accumulators. On real GPUs shared-memory tiling is what pays; on CPU-emulated WebGPU the
// barriers cost more than they save (webgpu-notes.md), so GpuContext picks gemm.wgsl there.
//   C[b][m, n] = mask'( alpha * sum_k A[b][m, k] * B[b][k, n]  (+ C_old)  (+ bias[b][n]) )
// Bindings: 0 A (read), 1 B (read), 2 bias (read), 3 mask (read), 4 C (read_write), 5 params (uniform).
// The k loop runs in the same order for every output: results are deterministic.
// CPU twin: ReferenceObjective's forward / backProject / accumulateLayerGradient (src/reference/engine.ts).

// #include "gemm_common.wgsl"

const TILE: u32 = 64u;
const DEPTH: u32 = 16u;


var<workgroup> tileA: array<f32, 1024>; // [DEPTH][TILE]
var<workgroup> tileB: array<f32, 1024>; // [DEPTH][TILE]

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let t = lid.y * 16u + lid.x;
  let row0 = wid.y * TILE;
  let col0 = wid.x * TILE;
  let b = wid.z;
  let aBase = p.offA + b * p.sAb;
  let bBase = p.offB + b * p.sBb;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < p.k; k0 += DEPTH) {
    // 256 threads load 4 elements each of both 16 x 64 slices; out-of-range entries are 0.
    for (var e = 0u; e < 4u; e++) {
      let idx = t + e * 256u;
      let kk = idx / TILE;
      let rc = idx % TILE;
      let kIndex = k0 + kk;
      let row = row0 + rc;
      let col = col0 + rc;
      var av = 0.0;
      var bv = 0.0;
      if (kIndex < p.k && row < p.m) {
        av = A[aBase + row * p.sAm + kIndex * p.sAk];
      }
      if (kIndex < p.k && col < p.n) {
        bv = B[bBase + kIndex * p.sBk + col * p.sBn];
      }
      tileA[idx] = av;
      tileB[idx] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < DEPTH; kk++) {
      var ar: array<f32, 4>;
      var br: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        ar[i] = tileA[kk * TILE + lid.y * 4u + i];
        br[i] = tileB[kk * TILE + lid.x * 4u + i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i][j] = fma(ar[i], br[j], acc[i][j]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let row = row0 + lid.y * 4u + i;
    if (row >= p.m) {
      break;
    }
    for (var j = 0u; j < 4u; j++) {
      let col = col0 + lid.x * 4u + j;
      if (col >= p.n) {
        break;
      }
      storeOutput(acc[i][j], b, row, col);
    }
  }
}
