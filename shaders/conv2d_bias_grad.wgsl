// conv2d_bias_grad.wgsl: a convolution's bias gradient, the sum over samples AND positions:
//   Out[b][o] (+)= sum_{s, y, x} D[b][s, o, y, x]
// dL/db += sums of delta (batch 1), (Hv)_b += sums of Rdelta (batch = directions).
// Bindings: 0 D (read), 1 Out (read_write, bias at offOut + b*sOutB),
//           2 params (uniform ConvParams, include/conv_common.wgsl; count = batch*outC).
// One channel per thread, samples then positions in a fixed order (deterministic).
// CPU twin: the bias branch of the conv2d map's parameter gradient in src/reference/layerMaps.ts.

// #include "elementwise.wgsl"
// #include "conv_common.wgsl"

@group(0) @binding(0) var<storage, read> D: array<f32>;
@group(0) @binding(1) var<storage, read_write> Out: array<f32>;
@group(0) @binding(2) var<uniform> p: ConvParams;

@compute @workgroup_size(ELEMENTWISE_GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let t = elementIndex(gid, groups);
  if (t >= p.count) {
    return;
  }
  let o = t % p.outC;
  let b = t / p.outC;
  let outPlane = p.outH * p.outW;
  var acc = 0.0;
  for (var s = 0u; s < p.rows; s++) {
    let dBase = p.offD + b * p.sDb + (s * p.outC + o) * outPlane;
    for (var q = 0u; q < outPlane; q++) {
      acc += D[dBase + q];
    }
  }
  let oi = p.offOut + b * p.sOutB + o;
  if ((p.flags & CONV_ACCUMULATE) != 0u) {
    acc += Out[oi];
  }
  Out[oi] = acc;
}
