// conv2d_input_grad.wgsl: the transpose of conv2d_forward.wgsl in its input (a transposed
// convolution), in gather form (each input cell sums what it fed, no atomics), with the epilogue:
//   Out[b][s, c, y, x] = mask'( sum_{o in group(c), i, j : y = oy sh - ph + i dh, x = ox sw - pw + j dw}
//                               W[b][o, c - g cpg, i, j] D[b][s, o, oy, ox]  (+ Out_old) ),
//   mask'(v) = v phi'(Mask[b][s, c, y, x])
// Backward pass delta_{k-1} = phi'(z_{k-1}) ⊙ L^T(delta_k; W) (or into a scratch buffer that
// pool2d_backward.wgsl routes through the pooling), and the R-backward terms L^T(delta_k; V) and
// += L^T(Rdelta_k; W).
// Bindings: 0 D (read), 1 W (read), 2 Mask (read), 3 Out (read_write),
//           4 params (uniform ConvParams, include/conv_common.wgsl;
//           count = batch*rows*groups*ceil(inC/groups/CB)*inH*inW threads;
//           offOut/sOutB and offMask/sMaskB address input-shaped tensors here).
// The (i, j, o) loop runs in a fixed order for every input cell (deterministic).
// CPU twin: the transpose (backward) of the conv2d map in src/reference/layerMaps.ts.

// #include "elementwise.wgsl"
// #include "conv_common.wgsl"

@group(0) @binding(0) var<storage, read> D: array<f32>;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read> Mask: array<f32>;
@group(0) @binding(3) var<storage, read_write> Out: array<f32>;
@group(0) @binding(4) var<uniform> p: ConvParams;

// Each thread computes CB consecutive input channels of one group at one (sample, y, x), so every
// D value it loads serves CB products (a last partial block clamps, and does not store duplicates).
const CB: u32 = 4u;

@compute @workgroup_size(ELEMENTWISE_GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let t = elementIndex(gid, groups);
  if (t >= p.count) {
    return;
  }
  let cpg = p.inC / p.groups;
  let opg = p.outC / p.groups;
  let blocks = (cpg + CB - 1u) / CB;
  let x = t % p.inW;
  var r = t / p.inW;
  let y = r % p.inH;
  r = r / p.inH;
  let blk = r % (blocks * p.groups);
  r = r / (blocks * p.groups);
  let s = r % p.rows;
  let b = r / p.rows;
  let g = blk / blocks;
  let first = (blk % blocks) * CB;
  let valid = min(CB, cpg - first);
  let taps = p.kh * p.kw;
  let outPlane = p.outH * p.outW;
  let dBase = p.offD + b * p.sDb + (s * p.outC + g * opg) * outPlane;
  var wBase: array<u32, CB>;
  for (var q = 0u; q < CB; q++) {
    wBase[q] = p.offW + b * p.sWb + (g * opg * cpg + first + min(q, valid - 1u)) * taps;
  }
  let oStride = cpg * taps;
  var acc: array<f32, CB>;
  for (var i = 0u; i < p.kh; i++) {
    let ny = i32(y + p.ph) - i32(i * p.dh);
    if (ny < 0 || u32(ny) % p.sh != 0u) {
      continue;
    }
    let oy = u32(ny) / p.sh;
    if (oy >= p.outH) {
      continue;
    }
    for (var j = 0u; j < p.kw; j++) {
      let nx = i32(x + p.pw) - i32(j * p.dw);
      if (nx < 0 || u32(nx) % p.sw != 0u) {
        continue;
      }
      let ox = u32(nx) / p.sw;
      if (ox >= p.outW) {
        continue;
      }
      let dCell = dBase + oy * p.outW + ox;
      let tap = i * p.kw + j;
      for (var o = 0u; o < opg; o++) {
        let dv = D[dCell + o * outPlane];
        let wo = o * oStride + tap;
        for (var q = 0u; q < CB; q++) {
          acc[q] = fma(W[wBase[q] + wo], dv, acc[q]);
        }
      }
    }
  }
  let plane = p.inH * p.inW;
  for (var q = 0u; q < valid; q++) {
    let c = g * cpg + first + q;
    let e = (s * p.inC + c) * plane + y * p.inW + x;
    let oi = p.offOut + b * p.sOutB + e;
    var v = acc[q];
    if ((p.flags & CONV_ACCUMULATE) != 0u) {
      v += Out[oi];
    }
    if ((p.flags & CONV_MASK) != 0u) {
      v = maskedBy(v, Mask[p.offMask + b * p.sMaskB + e], p.slope);
    }
    Out[oi] = v;
  }
}
