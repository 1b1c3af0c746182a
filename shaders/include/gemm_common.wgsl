// gemm_common.wgsl: the parameters, bindings and fused epilogue shared by gemm.wgsl and
// gemm_tiled.wgsl (spliced in by build.mjs where a kernel says `// #include "gemm_common.wgsl"`).
//   C[b][m, n] = mask'( alpha * acc  (+ C_old[b][m, n])  (+ bias[b][n]) ),
//   mask'(x) = x * phi'(Mask[b][m, n]),  phi'(z) = z > 0 ? 1 : slope (ReLU: slope 0).
// Every operand is addressed as offset + b*strideBatch + row*strideRow + col*strideCol.

struct Params {
  m: u32, n: u32, k: u32, flags: u32,
  offA: u32, sAm: u32, sAk: u32, sAb: u32,
  offB: u32, sBk: u32, sBn: u32, sBb: u32,
  offC: u32, sCm: u32, sCn: u32, sCb: u32,
  offBias: u32, sBiasB: u32, offMask: u32, sMaskM: u32,
  sMaskN: u32, sMaskB: u32, alpha: f32, slope: f32,
}

const FLAG_ACCUMULATE: u32 = 1u;
const FLAG_BIAS: u32 = 2u;
const FLAG_MASK: u32 = 4u;

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

/** Applies the epilogue to one accumulated product and stores it. */
fn storeOutput(acc: f32, b: u32, row: u32, col: u32) {
  let ci = p.offC + b * p.sCb + row * p.sCm + col * p.sCn;
  var value = p.alpha * acc;
  if ((p.flags & FLAG_ACCUMULATE) != 0u) {
    value += C[ci];
  }
  if ((p.flags & FLAG_BIAS) != 0u) {
    value += bias[p.offBias + b * p.sBiasB + col];
  }
  if ((p.flags & FLAG_MASK) != 0u) {
    let z = mask[p.offMask + b * p.sMaskB + row * p.sMaskM + col * p.sMaskN];
    value = select(p.slope * value, value, z > 0.0);
  }
  C[ci] = value;
}
