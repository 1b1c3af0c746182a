// conv2d_input_grad.wgsl: the transpose of conv2d_forward.wgsl in its input (a transposed
// convolution), in gather form (each input cell sums what it fed, no atomics), with the epilogue:
//   Out[b][s, c, y, x] = mask'( sum_{o in group(c), i, j : y = oy sh - ph + i dh, x = ox sw - pw + j dw}
//                               W[b][o, c - g cpg, i, j] D[b][s, o, oy, ox]
//                               (+ the same sum of W2[b] D2[b])   (CONV_PAIR)   (+ Out_old) ),
//   mask'(v) = v phi'(Mask[b][s, c, y, x])
// Backward pass delta_{k-1} = phi'(z_{k-1}) ⊙ L^T(delta_k; W) (or into a scratch buffer that
// pool2d_backward.wgsl routes through the pooling), and the R-backward L^T(delta_k; V) + L^T(Rdelta_k; W)
// in one pass (CONV_PAIR).
// Bindings: 0 D (read), 1 W (read), 2 Mask (read), 3 D2 (read), 4 W2 (read), 5 Out (read_write),
//           6 params (uniform ConvParams, include/conv_common.wgsl; count = rows*inH*ceil(inW/PX) threads,
//           spatialGroups = ceil(count / 256), spatialGroups * batch * groups * ceil(inC/groups/CB)
//           workgroups; offOut/sOutB and offMask/sMaskB address input-shaped tensors here).
// Each thread computes a register tile of CB input channels x PX consecutive input columns: per tap,
// CB weight and PX D loads feed CB*PX multiply-adds (as conv2d_forward.wgsl). Each workgroup takes
// 256 consecutive tiles (lanes) of one channel block of one direction; a last partial block clamps
// and does not store the duplicates, columns past inW are not stored.
// The (o, i, j) loop runs in a fixed order for every input cell (deterministic).
// CPU twin: the transpose (backward) of the conv2d map in src/reference/layerMaps.ts.

// #include "conv_common.wgsl"

@group(0) @binding(0) var<storage, read> D: array<f32>;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read> Mask: array<f32>;
@group(0) @binding(3) var<storage, read> D2: array<f32>;
@group(0) @binding(4) var<storage, read> W2: array<f32>;
@group(0) @binding(5) var<storage, read_write> Out: array<f32>;
@group(0) @binding(6) var<uniform> p: ConvParams;

const CB: u32 = 8u;
const PX: u32 = 4u;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let cpg = p.inC / p.groups;
  let opg = p.outC / p.groups;
  // CB input channels of a group x PX input columns of one row.
  let cell = channelBlock(lid.x, linearGroup(wid, groups), cpg, CB, PX, p.inH, p.inW);
  if (!cell.inside) {
    return;
  }
  let b = cell.b;
  let s = cell.s;
  let g = cell.g;
  let y = cell.y;
  let x0 = cell.x0;
  let first = cell.first;
  let valid = cell.valid;
  let xValid = cell.xValid;
  let taps = p.kh * p.kw;
  let outPlane = p.outH * p.outW;
  let oStride = cpg * taps;
  // W[o, c, i, j] of channel c = g cpg + first + q at (g opg * cpg + first + q) * taps + o * oStride + tap.
  let wFirst = (g * opg * cpg + first) * taps;
  var acc: array<f32, 32>; // [CB][PX]
  for (var half = 0u; half < 2u; half++) {
    if (half == 1u && (p.flags & CONV_PAIR) == 0u) {
      break;
    }
    let dBase = select(p.offD + b * p.sDb, p.off2a + b * p.s2a, half == 1u) + (s * p.outC + g * opg) * outPlane;
    let wBase = select(p.offW + b * p.sWb, p.off2b + b * p.s2b, half == 1u) + wFirst;
    for (var o = 0u; o < opg; o++) {
      for (var i = 0u; i < p.kh; i++) {
        let ny = i32(y + p.ph) - i32(i * p.dh);
        let oy = u32(max(ny, 0)) / p.sh;
        let rowOk = ny >= 0 && u32(ny) % p.sh == 0u && oy < p.outH;
        let dRow = dBase + o * outPlane + oy * p.outW;
        for (var j = 0u; j < p.kw; j++) {
          let wi = wBase + o * oStride + i * p.kw + j;
          var dv: array<f32, PX>;
          var wv: array<f32, CB>;
          if (half == 0u) {
            for (var u = 0u; u < PX; u++) {
              let nx = i32(x0 + u + p.pw) - i32(j * p.dw);
              let ox = u32(max(nx, 0)) / p.sw;
              let ok = rowOk && u < xValid && nx >= 0 && u32(nx) % p.sw == 0u && ox < p.outW;
              dv[u] = select(0.0, D[select(0u, dRow + ox, ok)], ok);
            }
            for (var q = 0u; q < CB; q++) {
              wv[q] = W[wi + min(q, valid - 1u) * taps];
            }
          } else {
            for (var u = 0u; u < PX; u++) {
              let nx = i32(x0 + u + p.pw) - i32(j * p.dw);
              let ox = u32(max(nx, 0)) / p.sw;
              let ok = rowOk && u < xValid && nx >= 0 && u32(nx) % p.sw == 0u && ox < p.outW;
              dv[u] = select(0.0, D2[select(0u, dRow + ox, ok)], ok);
            }
            for (var q = 0u; q < CB; q++) {
              wv[q] = W2[wi + min(q, valid - 1u) * taps];
            }
          }
          for (var q = 0u; q < CB; q++) {
            for (var u = 0u; u < PX; u++) {
              acc[q * PX + u] = fma(wv[q], dv[u], acc[q * PX + u]);
            }
          }
        }
      }
    }
  }
  let plane = p.inH * p.inW;
  for (var q = 0u; q < valid; q++) {
    let c = g * cpg + first + q;
    for (var u = 0u; u < xValid; u++) {
      let e = (s * p.inC + c) * plane + y * p.inW + x0 + u;
      let oi = p.offOut + b * p.sOutB + e;
      var v = acc[q * PX + u];
      if ((p.flags & CONV_ACCUMULATE) != 0u) {
        v += Out[oi];
      }
      if ((p.flags & CONV_MASK) != 0u) {
        v = maskedBy(v, Mask[p.offMask + b * p.sMaskB + e], p.slope);
      }
      Out[oi] = v;
    }
  }
}
