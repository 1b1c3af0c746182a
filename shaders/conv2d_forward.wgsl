// conv2d_forward.wgsl: direct 2-D convolution (PyTorch Conv2d, zero padding, stride, dilation,
// groups) with gemm.wgsl's fused epilogue, batched over `batch` (HVP directions):
//   Out[b][s, o, y, x] = mask'( sum_{c in group(o), i, j} W[b][o, c, i, j] X[b][s, c, y sh - ph + i dh, x sw - pw + j dw]
//                               (+ Out_old) (+ Bias[b][o]) ),   mask'(v) = v phi'(Mask[b][s, o, y, x])
// Forward pass z = conv(a; W) + b (batch 1), and the tangent Rz = conv(a; V) + c, then
// += conv(Ra; W) with the phi'(z) mask (batch = directions, W or X broadcast by stride 0).
// Bindings: 0 X (read), 1 W (read), 2 Bias (read), 3 Mask (read), 4 Out (read_write),
//           5 params (uniform ConvParams, include/conv_common.wgsl;
//           count = batch*rows*groups*ceil(outC/groups/OB)*outH*outW threads).
// The (i, j, c) loop runs in a fixed order for every output (deterministic).
// CPU twin: the conv2d map of src/reference/layerMaps.ts (forward), as ReferenceObjective's forward
// and tangent passes use it.

// #include "elementwise.wgsl"
// #include "conv_common.wgsl"

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(3) var<storage, read> Mask: array<f32>;
@group(0) @binding(4) var<storage, read_write> Out: array<f32>;
@group(0) @binding(5) var<uniform> p: ConvParams;

// Each thread computes OB consecutive output channels of one group at one (sample, y, x), so every
// input value it loads serves OB products (register blocking, as gemm.wgsl; a last partial block
// clamps its channel to the group's last and does not store the duplicates).
const OB: u32 = 4u;

@compute @workgroup_size(ELEMENTWISE_GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let t = elementIndex(gid, groups);
  if (t >= p.count) {
    return;
  }
  let cpg = p.inC / p.groups;
  let opg = p.outC / p.groups;
  let blocks = (opg + OB - 1u) / OB;
  let ox = t % p.outW;
  var r = t / p.outW;
  let oy = r % p.outH;
  r = r / p.outH;
  let blk = r % (blocks * p.groups);
  r = r / (blocks * p.groups);
  let s = r % p.rows;
  let b = r / p.rows;
  let g = blk / blocks;
  let first = (blk % blocks) * OB;
  let valid = min(OB, opg - first);
  let o0 = g * opg + first;
  let inPlane = p.inH * p.inW;
  let xBase = p.offX + b * p.sXb + (s * p.inC + g * cpg) * inPlane;
  let taps = p.kh * p.kw;
  var wBase: array<u32, OB>;
  for (var q = 0u; q < OB; q++) {
    wBase[q] = p.offW + b * p.sWb + (o0 + min(q, valid - 1u)) * cpg * taps;
  }
  let y0 = i32(oy * p.sh) - i32(p.ph);
  let x0 = i32(ox * p.sw) - i32(p.pw);
  var acc: array<f32, OB>;
  for (var i = 0u; i < p.kh; i++) {
    let iy = y0 + i32(i * p.dh);
    if (iy < 0 || iy >= i32(p.inH)) {
      continue;
    }
    for (var j = 0u; j < p.kw; j++) {
      let ix = x0 + i32(j * p.dw);
      if (ix < 0 || ix >= i32(p.inW)) {
        continue;
      }
      let xCell = xBase + u32(iy) * p.inW + u32(ix);
      let tap = i * p.kw + j;
      for (var c = 0u; c < cpg; c++) {
        let xv = X[xCell + c * inPlane];
        let wc = c * taps + tap;
        for (var q = 0u; q < OB; q++) {
          acc[q] = fma(W[wBase[q] + wc], xv, acc[q]);
        }
      }
    }
  }
  let plane = p.outH * p.outW;
  for (var q = 0u; q < valid; q++) {
    let o = o0 + q;
    let e = (s * p.outC + o) * plane + oy * p.outW + ox;
    let oi = p.offOut + b * p.sOutB + e;
    var v = acc[q];
    if ((p.flags & CONV_ACCUMULATE) != 0u) {
      v += Out[oi];
    }
    if ((p.flags & CONV_BIAS) != 0u) {
      v += Bias[p.offBias + b * p.sBiasB + o];
    }
    if ((p.flags & CONV_MASK) != 0u) {
      v = maskedBy(v, Mask[p.offMask + b * p.sMaskB + e], p.slope);
    }
    Out[oi] = v;
  }
}
