// Weight storage and in-place decode, shared by the mat-vec, mat-mat and embedding shaders. Exactly one DATA_*
// define picks the format; its decode lives in weights_<family>.glsl.
//
// A weight matrix (or one row chunk of it) is one storage buffer holding the format's streams one after another
// (see Engine.Formats.MatrixLayout): stream s starts at word p.streamOffset[s] and holds each row in
// p.streamStride[s] words. Rows are padded to p.paddedCols weights (a multiple of 8, zeros in the padding).
// Every format provides
//     void load_weight8(uint row, uint col, out vec4 lo, out vec4 hi)
// returning weights [col, col + 8) of chunk row `row`, col a multiple of 8 below p.paddedCols.
// Binding 0 is the weight buffer; binding 4 an auxiliary table of the format (a codebook), else a dummy.
//
// Block decode, for the mat-vec: every format also defines WEIGHT_BLOCK (weights per block: a multiple of 8 that
// divides p.paddedCols) and
//     vec2 load_block(uint row, uint block, out vec4 q[WEIGHT_BLOCK / 4])
// giving weights [block * WEIGHT_BLOCK, (block + 1) * WEIGHT_BLOCK) of chunk row `row` as q[i] * a.x + a.y, a the
// pair returned. A block is read with as few and as wide loads as its layout allows (16-byte loads where rows are
// 16-byte aligned), and what a block shares (a group's header word, a row scale) is read once: a group-integer
// block returns its codes and its group's (scale, min), so a product takes scale * sum(q x) + min * sum(x) per
// block; the other formats return decoded weights and (scale, 0) or (1, 0). Codes become floats exactly.
//
// Products (matvec, matmul, their EXPERTS variants) also take fusions of a decode graph, chosen by p.fusion bits
// (all may combine; semantics as IBackend.Linear and ProductFusion say):
//   FUSE_NORM: the input rows are RMS-normalised first with the weight at binding 6 (length p.cols):
//              x^[t, c] = x[t, c] * norm[c] / sqrt(mean_c(x[t, c]^2) + p.normEps); the sum of squares is taken
//              over the row's p.cols inputs, which a product reads anyway.
//   FUSE_SWIGLU: rows come in pairs (2j, 2j + 1) = (gate_j, up_j) (matrix rows, bias included); output row j of
//              token t is silu(acc[t, 2j]) * acc[t, 2j + 1], written at y[t * p.outStride + j] (p.outStride is
//              then half the matrix rows). Chunks always hold whole pairs.
//   FUSE_ACCUMULATE: the value is added to what y holds (a residual stream) instead of replacing it.

#extension GL_EXT_control_flow_attributes : enable

#define MAX_STREAMS 9   // SEFP at 7 bits: exponents, signs, 7 planes; 9 keeps the block within the 128 bytes every device allows

layout(std430, binding = 0) readonly buffer WeightWords { uint words[]; };
layout(std430, binding = 0) readonly buffer WeightQuads { uvec4 quads[]; };  // the same bytes, for 16-byte loads
layout(std430, binding = 4) readonly buffer AuxWords { uint aux[]; };

// One push-constant block for every weight op; field order mirrors WeightPush in VulkanBackend.
layout(push_constant) uniform Push
{
    uint rows;        // rows in this chunk
    uint cols;        // true row length (the input's row stride)
    uint paddedCols;  // row length the streams encode
    uint rowOffset;   // first matrix row of this chunk
    uint hasBias;
    uint tokens;      // mat-mat: input rows; embedding: tokens looked up
    uint outStride;   // mat-mat: output row stride (all rows of the matrix)
    uint param[4];    // format-specific (WeightFormat.ShaderParameters)
    uint streamOffset[MAX_STREAMS];
    uint streamStride[MAX_STREAMS];
    uint expertRows;  // expert variants: rows of one expert in a stack of experts (see matvec.comp)
    uint fusion;      // FUSE_* bits (products only)
    float normEps;    // FUSE_NORM's epsilon
} p;

const uint FUSE_NORM = 1u;
const uint FUSE_SWIGLU = 2u;
const uint FUSE_ACCUMULATE = 4u;

// Word `word` of row `row` in stream `stream`.
uint stream_word(uint stream, uint row, uint word)
{
    return words[p.streamOffset[stream] + row * p.streamStride[stream] + word];
}

// Word index of word `word` of row `row` in stream `stream` (for the wider loads: quads[index / 4]).
uint stream_index(uint stream, uint row, uint word)
{
    return p.streamOffset[stream] + row * p.streamStride[stream] + word;
}

// Small unsigned codes (below 2^23) as floats, exactly: the code in the mantissa of 2^23, less 2^23. A logic op
// and an add, at full rate on GPUs where an integer-to-float conversion runs at a quarter.
vec4 code_floats(uvec4 q)
{
    return uintBitsToFloat(q | 0x4B000000u) - 8388608.0;
}

#if defined(DATA_F32) || defined(DATA_F16) || defined(DATA_BF16)
#include "weights_float.glsl"
#elif defined(DATA_Q8) || defined(DATA_Q4) || defined(DATA_Q3) || defined(DATA_Q2)
#include "weights_int.glsl"
#elif defined(DATA_SEFP)
#include "weights_sefp.glsl"
#elif defined(DATA_BINARY)
#include "weights_binary.glsl"
#elif defined(DATA_PCDVQ)
#include "weights_pcdvq.glsl"
#else
#error "define one DATA_* weight format"
#endif
