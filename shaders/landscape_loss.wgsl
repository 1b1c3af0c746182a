// landscape_loss.wgsl: the summed loss of one data chunk for each of `count` parameter vectors,
// one workgroup per vector q (the batched forward pass left its outputs in Z[q]).
//   sums[outOffset + q] (+)= sum_{s < rows} loss(Z[q][s, :], T[s])
// LOSS (override), per-sample losses exactly as loss_gradient.wgsl:
//   0 ce:       logsumexp(z_s) - z_s[y_s]
//   1 mse:      sum_j (z_sj - t_sj)^2 / C
//   2 logistic: softplus(z_s) - y_s z_s
// The mean loss is sums / N afterwards (N the whole dataset). Each of the 64 threads sums samples
// s = t, t + 64, ... in order with Kahan compensation, then a fixed tree adds the 64 partials, and
// chunks accumulate in a fixed order: the same inputs give the same bits.
// Bindings: 0 Z (read, [count, zStride] with Z[q][s, j] at q*zStride + s*C + j), 1 T (read: labels
//           as f32 [rows], or targets [rows, C]), 2 sums (read_write), 3 params (uniform).
// CPU twin: lossValueAndGradient (src/reference/losses.ts) through ReferenceObjective.loss, one
// parameter vector at a time (SequentialBatchLoss, src/landscape/batchLoss.ts).
// softplus and the max-shifted logsumexp come from include/loss_common.wgsl: the per-sample losses
// are the same expressions as loss_gradient.wgsl's.

// #include "loss_common.wgsl"

struct Params {
  rows: u32, classes: u32, zStride: u32, outOffset: u32,
  accumulate: u32, pad0: u32, pad1: u32, pad2: u32,
}

override LOSS: u32 = 0u;

@group(0) @binding(0) var<storage, read> Z: array<f32>;
@group(0) @binding(1) var<storage, read> T: array<f32>;
@group(0) @binding(2) var<storage, read_write> sums: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> scratch: array<f32, 64>;

fn sampleLoss(zBase: u32, s: u32) -> f32 {
  let c = p.classes;
  let base = zBase + s * c;
  if (LOSS == 0u) {
    let y = u32(T[s]);
    return logSumExp(softmaxOf(base, c)) - Z[base + y];
  } else if (LOSS == 1u) {
    var total = 0.0;
    for (var j = 0u; j < c; j++) {
      let r = Z[base + j] - T[s * c + j];
      total += r * r;
    }
    return total / f32(c);
  }
  let z = Z[base];
  return softplus(z) - T[s] * z;
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let t = lid.x;
  let q = wid.x;
  let zBase = q * p.zStride;
  var sum = 0.0;
  var comp = 0.0;
  for (var s = t; s < p.rows; s += 64u) {
    let yk = sampleLoss(zBase, s) - comp;
    let tk = sum + yk;
    comp = (tk - sum) - yk;
    sum = tk;
  }
  scratch[t] = sum;
  for (var stride = 32u; stride > 0u; stride = stride >> 1u) {
    workgroupBarrier();
    if (t < stride) {
      scratch[t] += scratch[t + stride];
    }
  }
  if (t == 0u) {
    var total = scratch[0];
    if (p.accumulate != 0u) {
      total += sums[p.outOffset + q];
    }
    sums[p.outOffset + q] = total;
  }
}
