// sgd_momentum.wgsl: one step of SGD with momentum, PyTorch's torch.optim.SGD convention
// (dampening 0, no Nesterov), elementwise:
//   d = G[i] + weightDecay * THETA[i]          (L2 weight decay added to the gradient)
//   VEL[i] = momentum * VEL[i] + d             (zero-initialised: the first step stores d, as PyTorch)
//   THETA[i] = THETA[i] - lr * VEL[i]
// momentum 0 is plain SGD (VEL then holds d). 2-D grid for vectors past 65535 * 256 entries.
// Bindings: 0 G (read, the minibatch gradient), 1 THETA (read_write), 2 VEL (read_write, velocity),
//           3 params (uniform). Workgroup 256, one element per thread.
// CPU twin: sgdMomentumStep (src/train/optimizers.ts), same argument order.

// #include "elementwise.wgsl"

struct Params {
  n: u32, pad0: u32, pad1: u32, pad2: u32,
  lr: f32, momentum: f32, weightDecay: f32, pad3: f32,
}

@group(0) @binding(0) var<storage, read> G: array<f32>;
@group(0) @binding(1) var<storage, read_write> THETA: array<f32>;
@group(0) @binding(2) var<storage, read_write> VEL: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(ELEMENTWISE_GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = elementIndex(gid, groups);
  if (i >= p.n) {
    return;
  }
  let theta = THETA[i];
  let d = G[i] + p.weightDecay * theta;
  let v = p.momentum * VEL[i] + d;
  VEL[i] = v;
  THETA[i] = theta - p.lr * v;
}
