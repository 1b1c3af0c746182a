// conv_common.wgsl: the parameters and epilogue shared by the conv2d_*.wgsl kernels (spliced in by
// build.mjs where a kernel says `// #include "conv_common.wgsl"`). One uniform layout for all four
// (the host fills it in src/gpu/convDispatch.ts, convParams), so their geometry cannot disagree.
// Tensors, all f32, per sample NCHW and flattened (PyTorch's layout):
//   X   layer input      [batch][rows, inC, inH, inW]    at offX + b*sXb
//   D   output-shaped    [batch][rows, outC, outH, outW] at offD + b*sDb   (z, delta, Rdelta)
//   W   weight           [batch][outC, inC/groups, kh, kw] at offW + b*sWb (theta or directions)
//   Bias                 [batch][outC] at offBias + b*sBiasB
//   Mask                 laid out like the kernel's output, at offMask + b*sMaskB (pre-activations z)
//   Out                  the kernel's output at offOut + b*sOutB
// A stride 0 broadcasts an operand over the batch (the HVP directions).
// CONV_PAIR adds a second product of the same shape in the same pass (the HVP's two terms):
// forward + conv(X2; W2), input grad + conv^T(D2; W2), weight grad + D2 ⋆ X2, the second operands
// at off2a + b*s2a (X2 or D2) and off2b + b*s2b (W2, or X2 of the weight gradient).
// Thread layout (conv2d_forward/input_grad/weight_grad): lanes of a workgroup run along positions
// (output, input, output) and everything indexed by the workgroup (channel block, direction, tap
// block) is workgroup-uniform, so weight loads are scalar broadcasts on SIMD-on-CPU drivers
// (lavapipe) and one gathered activation load feeds a block of 8 channels' multiply-adds.
// Geometry (PyTorch Conv2d): out[o, y, x] reads in[c, y*sh - ph + i*dh, x*sw - pw + j*dw], zero
// padding, input channels of group g = o / (outC/groups) only.

struct ConvParams {
  inC: u32, inH: u32, inW: u32, outC: u32,
  outH: u32, outW: u32, kh: u32, kw: u32,
  sh: u32, sw: u32, ph: u32, pw: u32,
  dh: u32, dw: u32, groups: u32, rows: u32,
  batch: u32, flags: u32, offX: u32, sXb: u32,
  offD: u32, sDb: u32, offW: u32, sWb: u32,
  offBias: u32, sBiasB: u32, offMask: u32, sMaskB: u32,
  offOut: u32, sOutB: u32, slope: f32, count: u32,
  off2a: u32, s2a: u32, off2b: u32, s2b: u32,
  kThreads: u32, steps: u32, entries: u32, spatialGroups: u32,
}

const CONV_ACCUMULATE: u32 = 1u;
const CONV_BIAS: u32 = 2u;
const CONV_MASK: u32 = 4u;
const CONV_PAIR: u32 = 8u;

/** The index of a workgroup in a dispatch spread over x and y (DispatchBuilder.linearGroups): uniform across its lanes. */
fn linearGroup(wid: vec3<u32>, groups: vec3<u32>) -> u32 {
  return wid.x + wid.y * groups.x;
}

/** x * phi'(z), phi'(z) = z > 0 ? 1 : slope (ReLU: slope 0), as gemm_common.wgsl's epilogue. */
fn maskedBy(x: f32, z: f32, slope: f32) -> f32 {
  return select(slope * x, x, z > 0.0);
}

/**
 * What one invocation of the channel-blocked kernels (conv2d_forward, conv2d_input_grad) computes:
 * a block of up to `block` of a group's `perGroup` channels, for one sample s, one row y and up to
 * `columns` consecutive columns from x0 of a `height` x `width` plane. Workgroups run over
 * (direction b, group g, channel block); the 256 lanes of p.spatialGroups workgroups over
 * (sample, row, column block). `inside` is false past the dispatch's extent (p.batch, p.count).
 */
struct ChannelBlock {
  inside: bool,
  b: u32,
  g: u32,
  first: u32,
  valid: u32,
  s: u32,
  y: u32,
  x0: u32,
  xValid: u32,
}

fn channelBlock(lane: u32, wl: u32, perGroup: u32, block: u32, columns: u32, height: u32, width: u32) -> ChannelBlock {
  var cell: ChannelBlock;
  let blocks = (perGroup + block - 1u) / block;
  let r = wl / p.spatialGroups;
  let blk = r % (blocks * p.groups);
  cell.b = r / (blocks * p.groups);
  let t = (wl % p.spatialGroups) * 256u + lane;
  cell.inside = cell.b < p.batch && t < p.count;
  if (!cell.inside) {
    return cell;
  }
  let xBlocks = (width + columns - 1u) / columns;
  cell.x0 = (t % xBlocks) * columns;
  let rest = t / xBlocks;
  cell.y = rest % height;
  cell.s = rest / height;
  cell.g = blk / blocks;
  cell.first = (blk % blocks) * block;
  cell.valid = min(block, perGroup - cell.first);
  cell.xValid = min(columns, width - cell.x0);
  return cell;
}
