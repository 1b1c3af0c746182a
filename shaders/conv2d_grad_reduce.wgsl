// conv2d_grad_reduce.wgsl: stage 2 of the convolution's parameter gradient (conv2d_weight_grad.wgsl
// writes partial sums): sums rows r of In[b][r][e] (R rows of `entries` values per direction) in
// blocks of G rows, in increasing r (deterministic):
//   final pass (outRows = 1):  Out[offOut + b*sOutB + e] (+)= sum_r In[b][r][e]        (e < nWeights)
//                              Out[offBias + b*sBiasB + e - nWeights] (+)= ...          (biases)
//   otherwise:                 Next[(b*outRows + rb)*entries + e] = sum_{r in block rb} In[b][r][e]
// so that no invocation loops more than G times (lavapipe ends an invocation's loops after 65535
// back-edges in all, see conv2d_weight_grad.wgsl); the host chains passes until one row is left.
// Bindings: 0 In (read), 1 Out (read_write; the products buffer, or the next partials buffer),
//           2 params (uniform; count = batch*outRows*entries threads).
// CPU twin: the sums over samples of the conv2d parameter gradient in src/reference/layerMaps.ts.

// #include "elementwise.wgsl"

struct ReduceParams {
  rowsIn: u32, rowsPer: u32, outRows: u32, entries: u32,
  nWeights: u32, flags: u32, offOut: u32, sOutB: u32,
  offBias: u32, sBiasB: u32, count: u32, pad: u32,
}

@group(0) @binding(0) var<storage, read> In: array<f32>;
@group(0) @binding(1) var<storage, read_write> Out: array<f32>;
@group(0) @binding(2) var<uniform> p: ReduceParams;

const REDUCE_ACCUMULATE: u32 = 1u;

@compute @workgroup_size(ELEMENTWISE_GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let t = elementIndex(gid, groups);
  if (t >= p.count) {
    return;
  }
  let e = t % p.entries;
  let r = t / p.entries;
  let rb = r % p.outRows;
  let b = r / p.outRows;
  let lo = rb * p.rowsPer;
  let hi = min(p.rowsIn, lo + p.rowsPer);
  var acc = 0.0;
  for (var row = lo; row < hi; row++) {
    acc += In[(b * p.rowsIn + row) * p.entries + e];
  }
  if (p.outRows > 1u) {
    Out[t] = acc;
    return;
  }
  var oi = p.offOut + b * p.sOutB + e;
  if (e >= p.nWeights) {
    oi = p.offBias + b * p.sBiasB + e - p.nWeights;
  }
  if ((p.flags & REDUCE_ACCUMULATE) != 0u) {
    acc += Out[oi];
  }
  Out[oi] = acc;
}
