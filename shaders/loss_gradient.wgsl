// loss_gradient.wgsl: per-sample loss and dL/dz for one chunk of samples, one sample per thread.
// LOSS (override): 0 softmax cross-entropy, 1 mean squared error, 2 binary logistic.
//   ce:       loss_s = logsumexp(z_s) - z_s[y_s],     delta = (softmax(z_s) - onehot(y_s)) * scale
//   mse:      loss_s = sum_j (z_sj - t_sj)^2 / C,     delta = 2 (z - t) * scale
//   logistic: loss_s = softplus(z_s) - y_s z_s,       delta = (sigmoid(z_s) - y_s) * scale
// scale is 1/N (ce, logistic) or 1/(N C) (mse), N the whole dataset, so chunk gradients add up to
// the exact mean-loss gradient. The mean loss is sum_s loss_s / N, reduced afterwards.
// Bindings: 0 Z (read, [rows, C]), 1 T (read: labels as f32 [rows], or targets [rows, C]),
//           2 lossOut (read_write, per-sample losses at offLoss), 3 delta (read_write, [rows, C]),
//           4 params (uniform).
// softplus, sigmoid and the max-shifted softmax / logsumexp come from include/loss_common.wgsl.
// CPU twin: lossValueAndGradient (src/reference/losses.ts).

// #include "loss_common.wgsl"

struct Params {
  rows: u32, classes: u32, offLoss: u32, scale: f32,
}

override LOSS: u32 = 0u;

@group(0) @binding(0) var<storage, read> Z: array<f32>;
@group(0) @binding(1) var<storage, read> T: array<f32>;
@group(0) @binding(2) var<storage, read_write> lossOut: array<f32>;
@group(0) @binding(3) var<storage, read_write> delta: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let s = gid.x;
  if (s >= p.rows) {
    return;
  }
  let c = p.classes;
  let base = s * c;
  if (LOSS == 0u) {
    let y = u32(T[s]);
    let sm = softmaxOf(base, c);
    lossOut[p.offLoss + s] = logSumExp(sm) - Z[base + y];
    for (var j = 0u; j < c; j++) {
      delta[base + j] = (softmaxAt(sm, base + j) - select(0.0, 1.0, j == y)) * p.scale;
    }
  } else if (LOSS == 1u) {
    var total = 0.0;
    for (var j = 0u; j < c; j++) {
      let r = Z[base + j] - T[base + j];
      total += r * r;
      delta[base + j] = 2.0 * r * p.scale;
    }
    lossOut[p.offLoss + s] = total / f32(c);
  } else {
    let z = Z[s];
    let y = T[s];
    lossOut[p.offLoss + s] = softplus(z) - y * z;
    delta[s] = (sigmoid(z) - y) * p.scale;
  }
}
