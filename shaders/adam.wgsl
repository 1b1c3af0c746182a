// adam.wgsl: one step of Adam (Kingma & Ba 2015) as PyTorch's torch.optim.Adam (amsgrad off), or
// AdamW (Loshchilov & Hutter 2019) with DECOUPLED = 1, elementwise:
//   Adam:  d = G[i] + weightDecay * THETA[i]                     (L2 decay added to the gradient)
//   AdamW: d = G[i];  THETA[i] = THETA[i] * (1 - lr * weightDecay)  (decoupled decay)
//   M[i] = beta1 * M[i] + (1 - beta1) * d
//   V[i] = beta2 * V[i] + (1 - beta2) * d * d
//   THETA[i] -= stepSize * M[i] / (sqrt(V[i]) / sqrtBias2 + eps)
// with the bias corrections of step t (1-based) folded in on the host, in float64:
//   stepSize = lr / (1 - beta1^t),  sqrtBias2 = sqrt(1 - beta2^t)        (PyTorch's arrangement),
// and 1 - beta1, 1 - beta2 also formed in float64 (in f32, 1 - 0.999 loses 4 digits to cancellation;
// PyTorch likewise passes them as Python floats).
// M and V start at zero. 2-D grid for vectors past 65535 * 256 entries.
// Bindings: 0 G (read, the minibatch gradient), 1 THETA (read_write), 2 M (read_write, first
//           moment), 3 V (read_write, second moment), 4 params (uniform). Workgroup 256.
// CPU twin: adamStep (src/train/optimizers.ts), same argument order.

// #include "elementwise.wgsl"

struct Params {
  n: u32, decoupled: u32, pad0: u32, pad1: u32,
  beta1: f32, beta2: f32, eps: f32, weightDecay: f32,
  stepSize: f32, sqrtBias2: f32, decayFactor: f32, oneMinusBeta1: f32,
  oneMinusBeta2: f32, pad2: f32, pad3: f32, pad4: f32,
}

@group(0) @binding(0) var<storage, read> G: array<f32>;
@group(0) @binding(1) var<storage, read_write> THETA: array<f32>;
@group(0) @binding(2) var<storage, read_write> M: array<f32>;
@group(0) @binding(3) var<storage, read_write> V: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(ELEMENTWISE_GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = elementIndex(gid, groups);
  if (i >= p.n) {
    return;
  }
  var theta = THETA[i];
  var d = G[i];
  if (p.decoupled == 1u) {
    theta = theta * p.decayFactor;
  } else {
    d = d + p.weightDecay * theta;
  }
  let m = p.beta1 * M[i] + p.oneMinusBeta1 * d;
  let v = p.beta2 * V[i] + p.oneMinusBeta2 * d * d;
  M[i] = m;
  V[i] = v;
  THETA[i] = theta - p.stepSize * m / (sqrt(v) / p.sqrtBias2 + p.eps);
}
