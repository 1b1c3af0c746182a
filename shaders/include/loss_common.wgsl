// loss_common.wgsl: the loss math shared by loss_gradient.wgsl (loss and dL/dz), loss_curvature.wgsl
// (d^2L/dz^2 · Rz) and landscape_loss.wgsl (loss only), spliced in by build.mjs where a kernel says
// `// #include "loss_common.wgsl"`. One copy, so the loss, its gradient and its curvature cannot
// drift apart; each function keeps the operation order the kernels had, so results are unchanged.
// The softmax functions read the logits from the including kernel's `Z` binding (array<f32>):
// core WGSL cannot pass a storage array to a function (pointer parameters in the storage address
// space need the unrestricted_pointer_parameters extension), so they take indices into Z.
// CPU twin: src/reference/losses.ts.

// Max-shifted softmax normaliser of the C logits z_j = Z[base + j] (the log-sum-exp trick):
//   m = max_j z_j,  total = sum_j exp(z_j - m),
//   logsumexp(z) = m + log(total),  softmax(z)_j = exp(z_j - m) / total.
// Every exponent is <= 0, so exp cannot overflow, and total lies in [1, C], so log(total) is finite.
struct Softmax {
  m: f32,
  total: f32,
}

fn softmaxOf(base: u32, c: u32) -> Softmax {
  var m = Z[base];
  for (var j = 1u; j < c; j++) {
    m = max(m, Z[base + j]);
  }
  var total = 0.0;
  for (var j = 0u; j < c; j++) {
    total += exp(Z[base + j] - m);
  }
  return Softmax(m, total);
}

// logsumexp(z) = m + log(sum_j exp(z_j - m)); the cross-entropy loss is logsumexp(z) - z_y.
fn logSumExp(sm: Softmax) -> f32 {
  return sm.m + log(sm.total);
}

// softmax(z)_j = exp(z_j - m) / total for the logit z_j at Z[index] (index = base + j).
fn softmaxAt(sm: Softmax, index: u32) -> f32 {
  return exp(Z[index] - sm.m) / sm.total;
}

// softplus(z) = log(1 + e^z) = max(z, 0) + log(1 + e^-|z|): the binary logistic loss is
// softplus(z) - y z. The rewritten form never exponentiates a positive number (no overflow for
// large z) and keeps the max(z, 0) term exact.
fn softplus(z: f32) -> f32 {
  return max(z, 0.0) + log(1.0 + exp(-abs(z)));
}

// sigmoid(z) = 1 / (1 + e^-z) = d softplus / dz, with e = e^-|z| <= 1:
//   z >= 0: 1 / (1 + e),   z < 0: e / (1 + e)   (= e^z / (1 + e^z)),
// so exp never overflows and the small tail for z << 0 keeps its relative precision.
// Its derivative sigmoid(z) (1 - sigmoid(z)) is the logistic loss's curvature.
fn sigmoid(z: f32) -> f32 {
  let e = exp(-abs(z));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), z >= 0.0);
}
