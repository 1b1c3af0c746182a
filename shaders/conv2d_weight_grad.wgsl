// conv2d_weight_grad.wgsl: the transpose of conv2d_forward.wgsl in its weight, summed over the
// chunk's samples:
//   Out[b][o, c', i, j] (+)= sum_{s, oy, ox} D[b][s, o, oy, ox] X[b][s, g cpg + c', oy sh - ph + i dh, ox sw - pw + j dw]
// with g = o / (outC/groups). Gradient dL/dW += L_W^T(delta; a) (batch 1), and the HVP terms
// (Hv)_W += L_W^T(Rdelta; a) + L_W^T(delta; Ra) (batch = directions, D or X broadcast by stride 0),
// accumulating chunk after chunk into the products buffer (FLAG accumulate).
// Bindings: 0 D (read), 1 X (read), 2 Out (read_write, weight at offOut + b*sOutB),
//           3 params (uniform ConvParams, include/conv_common.wgsl; count = batch*outC*cpg*kh*kw).
// One weight entry per thread; samples, then output rows, then columns, in a fixed order (deterministic).
// CPU twin: the weight transpose of the conv2d map in src/reference/layerMaps.ts.

// #include "elementwise.wgsl"
// #include "conv_common.wgsl"

@group(0) @binding(0) var<storage, read> D: array<f32>;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Out: array<f32>;
@group(0) @binding(3) var<uniform> p: ConvParams;

@compute @workgroup_size(ELEMENTWISE_GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let t = elementIndex(gid, groups);
  if (t >= p.count) {
    return;
  }
  let cpg = p.inC / p.groups;
  let j = t % p.kw;
  var r = t / p.kw;
  let i = r % p.kh;
  r = r / p.kh;
  let ci = r % cpg;
  r = r / cpg;
  let o = r % p.outC;
  let b = r / p.outC;
  let c = (o / (p.outC / p.groups)) * cpg + ci;
  let inPlane = p.inH * p.inW;
  let outPlane = p.outH * p.outW;
  // Output rows/columns whose window tap (i, j) lands inside the image: oy in [oyLo, oyHi).
  let offY = i32(i * p.dh) - i32(p.ph);
  let offX = i32(j * p.dw) - i32(p.pw);
  let oyLo = u32(max(0, (-offY + i32(p.sh) - 1) / i32(p.sh)));
  let oxLo = u32(max(0, (-offX + i32(p.sw) - 1) / i32(p.sw)));
  let oyHi = min(p.outH, u32(max(0, (i32(p.inH) - offY + i32(p.sh) - 1) / i32(p.sh))));
  let oxHi = min(p.outW, u32(max(0, (i32(p.inW) - offX + i32(p.sw) - 1) / i32(p.sw))));
  var acc = 0.0;
  for (var s = 0u; s < p.rows; s++) {
    let dBase = p.offD + b * p.sDb + (s * p.outC + o) * outPlane;
    let xBase = p.offX + b * p.sXb + (s * p.inC + c) * inPlane;
    for (var oy = oyLo; oy < oyHi; oy++) {
      let dRow = dBase + oy * p.outW;
      let xRow = xBase + u32(i32(oy * p.sh) + offY) * p.inW;
      for (var ox = oxLo; ox < oxHi; ox++) {
        acc = fma(D[dRow + ox], X[xRow + u32(i32(ox * p.sw) + offX)], acc);
      }
    }
  }
  let oi = p.offOut + b * p.sOutB + t % (p.outC * cpg * p.kh * p.kw);
  if ((p.flags & CONV_ACCUMULATE) != 0u) {
    acc += Out[oi];
  }
  Out[oi] = acc;
}
