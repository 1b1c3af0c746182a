// conv2d_weight_grad.wgsl: stage 1 of the weight (and bias) gradient of a convolution, the
// transpose of conv2d_forward.wgsl in its weight summed over the chunk's samples and positions:
//   dW[b][o, c', i, j] = sum_{s, oy, ox} D[b][s, o, oy, ox] X[b][s, g cpg + c', oy sh - ph + i dh, ox sw - pw + j dw]
//                        (+ the same sum of D2[b] X2[b])   (CONV_PAIR)
//   db[b][o] = sum_{s, oy, ox} D[b][s, o, oy, ox]             (CONV_BIAS)
// with g = o / (outC/groups). Gradient dL/dW += L_W^T(delta; a) (batch 1), and the HVP terms
// (Hv)_W += L_W^T(Rdelta; a) + L_W^T(delta; Ra) in one pass (batch = directions, CONV_PAIR).
// The sum over the rows*outH*outW output positions K is split over kThreads threads: thread kt
// sums positions kt, kt + kThreads, ... (at most `steps` of them) and writes its partial sums to
//   Partials[(b * kThreads + kt) * entries + e],  e = (o cpg + c') kh kw + i kw + j  (weights),
//                                                e = outC cpg kh kw + o          (biases),
// which conv2d_grad_reduce.wgsl then sums over kt in a fixed order into the products buffer.
// (No invocation may loop long: lavapipe's LLVM backend ends every loop of an invocation once the
// invocation's back-edges total 65535 (gallivm LP_MAX_TGSI_LOOP_ITERATIONS) and silently returns
// a truncated sum; one thread per weight looping over all positions lost terms past ~84 MNIST samples.)
// Workgroups: kThreads / 256 per (direction, output-channel block of OB, input channel c', tap block
// of TB), all uniform; lanes run along positions: each step gathers OB D values and TB X values for
// OB x TB multiply-adds.
// Bindings: 0 D (read), 1 X (read), 2 D2 (read), 3 X2 (read), 4 Partials (read_write),
//           5 params (uniform ConvParams, include/conv_common.wgsl; count = rows*outH*outW).
// Fixed order everywhere: deterministic.
// CPU twin: the weight transpose of the conv2d map in src/reference/layerMaps.ts.

// #include "conv_common.wgsl"

@group(0) @binding(0) var<storage, read> D: array<f32>;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> D2: array<f32>;
@group(0) @binding(3) var<storage, read> X2: array<f32>;
@group(0) @binding(4) var<storage, read_write> Partials: array<f32>;
@group(0) @binding(5) var<uniform> p: ConvParams;

const OB: u32 = 8u;
const TB: u32 = 9u;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let wl = linearGroup(wid, groups);
  let kGroups = p.kThreads / 256u;
  let cpg = p.inC / p.groups;
  let opg = p.outC / p.groups;
  let taps = p.kh * p.kw;
  let tBlocks = (taps + TB - 1u) / TB;
  let oBlocks = (opg + OB - 1u) / OB;
  let kt = (wl % kGroups) * 256u + lid.x;
  var r = wl / kGroups;
  let tb = r % tBlocks;
  r = r / tBlocks;
  let ci = r % cpg;
  r = r / cpg;
  let blk = r % (oBlocks * p.groups);
  let b = r / (oBlocks * p.groups);
  if (b >= p.batch) {
    return;
  }
  let g = blk / oBlocks;
  let first = (blk % oBlocks) * OB;
  let valid = min(OB, opg - first);
  let o0 = g * opg + first;
  let c = g * cpg + ci;
  let t0 = tb * TB;
  let tValid = min(TB, taps - t0);
  let plane = p.outH * p.outW;
  let inPlane = p.inH * p.inW;
  let withBias = (p.flags & CONV_BIAS) != 0u && ci == 0u && tb == 0u;
  // Tap offsets of this block (uniform), clamped past the last tap.
  var tapY: array<i32, TB>;
  var tapX: array<i32, TB>;
  for (var u = 0u; u < TB; u++) {
    let tap = min(t0 + u, taps - 1u);
    tapY[u] = i32((tap / p.kw) * p.dh) - i32(p.ph);
    tapX[u] = i32((tap % p.kw) * p.dw) - i32(p.pw);
  }
  var acc: array<f32, 72>; // [OB][TB]
  var bacc: array<f32, OB>;
  for (var half = 0u; half < 2u; half++) {
    if (half == 1u && (p.flags & CONV_PAIR) == 0u) {
      break;
    }
    let dOff = select(p.offD + b * p.sDb, p.off2a + b * p.s2a, half == 1u);
    let xOff = select(p.offX + b * p.sXb, p.off2b + b * p.s2b, half == 1u);
    for (var m = 0u; m < p.steps; m++) {
      let k = kt + m * p.kThreads;
      if (k >= p.count) {
        break;
      }
      let s = k / plane;
      let pos = k % plane;
      let oy = pos / p.outW;
      let ox = pos % p.outW;
      let dBase = dOff + (s * p.outC + o0) * plane + pos;
      var dv: array<f32, OB>;
      if (half == 0u) {
        for (var q = 0u; q < OB; q++) {
          dv[q] = D[dBase + min(q, valid - 1u) * plane];
        }
      } else {
        for (var q = 0u; q < OB; q++) {
          dv[q] = D2[dBase + min(q, valid - 1u) * plane];
        }
      }
      if (withBias && half == 0u) {
        for (var q = 0u; q < OB; q++) {
          bacc[q] += dv[q];
        }
      }
      let xBase = xOff + (s * p.inC + c) * inPlane;
      let y0 = i32(oy * p.sh);
      let x0 = i32(ox * p.sw);
      for (var u = 0u; u < TB; u++) {
        let iy = y0 + tapY[u];
        let ix = x0 + tapX[u];
        let ok = iy >= 0 && iy < i32(p.inH) && ix >= 0 && ix < i32(p.inW);
        let xi = select(0u, xBase + u32(iy) * p.inW + u32(ix), ok);
        var xv = 0.0;
        if (half == 0u) {
          xv = X[xi];
        } else {
          xv = X2[xi];
        }
        xv = select(0.0, xv, ok);
        for (var q = 0u; q < OB; q++) {
          acc[q * TB + u] = fma(dv[q], xv, acc[q * TB + u]);
        }
      }
    }
  }
  let pBase = (b * p.kThreads + kt) * p.entries;
  for (var q = 0u; q < valid; q++) {
    let wRow = pBase + ((o0 + q) * cpg + ci) * taps + t0;
    for (var u = 0u; u < tValid; u++) {
      Partials[wRow + u] = acc[q * TB + u];
    }
  }
  if (withBias) {
    let bRow = pBase + p.outC * cpg * taps + o0;
    for (var q = 0u; q < valid; q++) {
      Partials[bRow + q] = bacc[q];
    }
  }
}
