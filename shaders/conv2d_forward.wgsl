// conv2d_forward.wgsl: direct 2-D convolution (PyTorch Conv2d, zero padding, stride, dilation,
// groups) with gemm.wgsl's fused epilogue, batched over `batch` (HVP directions):
//   Out[b][s, o, y, x] = mask'( sum_{c in group(o), i, j} W[b][o, c, i, j] X[b][s, c, y sh - ph + i dh, x sw - pw + j dw]
//                               (+ sum ... W2[b][o, c, i, j] X2[b][s, c, ...])   (CONV_PAIR)
//                               (+ Out_old) (+ Bias[b][o]) ),   mask'(v) = v phi'(Mask[b][s, o, y, x])
// Forward pass z = conv(a; W) + b (batch 1), and the tangent Rz = conv(a; V) + c + conv(Ra; W)
// with the phi'(z) mask in one pass (batch = directions, CONV_PAIR, W or X broadcast by stride 0).
// Bindings: 0 X (read), 1 W (read), 2 Bias (read), 3 Mask (read), 4 X2 (read), 5 W2 (read),
//           6 Out (read_write), 7 params (uniform ConvParams, include/conv_common.wgsl;
//           count = rows*outH*ceil(outW/PX) threads, spatialGroups = ceil(count / 256); the dispatch has
//           spatialGroups * batch * groups * ceil(outC/groups/OB) workgroups, DispatchBuilder.linearGroups).
// Each thread computes a register tile of OB output channels x PX consecutive output columns: per
// tap, OB weight and PX input loads feed OB*PX multiply-adds (lavapipe gathers every load, even a
// workgroup-uniform one inside a loop, so loads per multiply-add are what counts). Each workgroup
// takes 256 consecutive tiles (lanes) of one channel block of one direction; a last partial channel
// block clamps its channel and does not store it, columns past outW are not stored.
// The (c, i, j) loop runs in a fixed order for every output (deterministic).
// CPU twin: the conv2d map of src/reference/layerMaps.ts (forward), as ReferenceObjective's forward
// and tangent passes use it.

// #include "conv_common.wgsl"

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(3) var<storage, read> Mask: array<f32>;
@group(0) @binding(4) var<storage, read> X2: array<f32>;
@group(0) @binding(5) var<storage, read> W2: array<f32>;
@group(0) @binding(6) var<storage, read_write> Out: array<f32>;
@group(0) @binding(7) var<uniform> p: ConvParams;

const OB: u32 = 8u;
const PX: u32 = 4u;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let cpg = p.inC / p.groups;
  let opg = p.outC / p.groups;
  // OB output channels of a group x PX output columns of one row.
  let cell = channelBlock(lid.x, linearGroup(wid, groups), opg, OB, PX, p.outH, p.outW);
  if (!cell.inside) {
    return;
  }
  let b = cell.b;
  let s = cell.s;
  let g = cell.g;
  let oy = cell.y;
  let ox0 = cell.x0;
  let valid = cell.valid;
  let xValid = cell.xValid;
  let o0 = g * opg + cell.first;
  let inPlane = p.inH * p.inW;
  let taps = p.kh * p.kw;
  let wStride = cpg * taps;
  let y0 = i32(oy * p.sh) - i32(p.ph);
  let x0 = i32(ox0 * p.sw) - i32(p.pw);
  var acc: array<f32, 32>; // [OB][PX]
  for (var half = 0u; half < 2u; half++) {
    if (half == 1u && (p.flags & CONV_PAIR) == 0u) {
      break;
    }
    let xBase = select(p.offX + b * p.sXb, p.off2a + b * p.s2a, half == 1u) + (s * p.inC + g * cpg) * inPlane;
    let wBase = select(p.offW + b * p.sWb, p.off2b + b * p.s2b, half == 1u) + o0 * wStride;
    for (var c = 0u; c < cpg; c++) {
      for (var i = 0u; i < p.kh; i++) {
        let iy = y0 + i32(i * p.dh);
        let rowOk = iy >= 0 && iy < i32(p.inH);
        let xRow = xBase + c * inPlane + u32(max(iy, 0)) * p.inW;
        for (var j = 0u; j < p.kw; j++) {
          let wi = wBase + c * taps + i * p.kw + j;
          var xv: array<f32, PX>;
          var wv: array<f32, OB>;
          if (half == 0u) {
            for (var u = 0u; u < PX; u++) {
              let ix = x0 + i32(u * p.sw + j * p.dw);
              let ok = rowOk && u < xValid && ix >= 0 && ix < i32(p.inW);
              xv[u] = select(0.0, X[select(0u, xRow + u32(ix), ok)], ok);
            }
            for (var q = 0u; q < OB; q++) {
              wv[q] = W[wi + min(q, valid - 1u) * wStride];
            }
          } else {
            for (var u = 0u; u < PX; u++) {
              let ix = x0 + i32(u * p.sw + j * p.dw);
              let ok = rowOk && u < xValid && ix >= 0 && ix < i32(p.inW);
              xv[u] = select(0.0, X2[select(0u, xRow + u32(ix), ok)], ok);
            }
            for (var q = 0u; q < OB; q++) {
              wv[q] = W2[wi + min(q, valid - 1u) * wStride];
            }
          }
          for (var q = 0u; q < OB; q++) {
            for (var u = 0u; u < PX; u++) {
              acc[q * PX + u] = fma(wv[q], xv[u], acc[q * PX + u]);
            }
          }
        }
      }
    }
  }
  let plane = p.outH * p.outW;
  for (var q = 0u; q < valid; q++) {
    let o = o0 + q;
    for (var u = 0u; u < xValid; u++) {
      let e = (s * p.outC + o) * plane + oy * p.outW + ox0 + u;
      let oi = p.offOut + b * p.sOutB + e;
      var v = acc[q * PX + u];
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
}
