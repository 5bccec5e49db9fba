#version 450
// Matrix-matrix product for a batch of tokens (prefill): y[t, rowOffset + r] = sum_c W[r, c] * x[t, c] (+ bias),
// decoding the weights' format in place (load_weight8, weights.glsl). Fusions (norm, SwiGLU, accumulate): weights.glsl.
//
// Tiling. A workgroup computes a tile of BM = WR * TM chunk rows by BN = WT * TN tokens; its WORKGROUP = WR * WT
// invocations form a WR x WT grid and each keeps a TM x TN block of outputs in registers: rows
// (i / 4) * 4 WR + 4 tr + i % 4 of the tile and tokens (j / 4) * 4 WT + 4 tt + j % 4, blocks of 4 so that an
// invocation reads its operands as vec4s of a shared tile and a SwiGLU (gate, up) pair stays in one invocation.
// Two ways to feed the blocks, chosen by the specialization constant BK (VulkanBackend picks them per device):
//   BK = 0, direct (CPU devices such as lavapipe, where an invocation is one SIMD lane, every load from a buffer or
//     from shared memory is a per-lane loop, barriers switch coroutines and arithmetic is cheap): each invocation
//     decodes 8 columns of its own TM rows (each weight of the tile decoded once, by the one invocation that owns
//     the row) and reads its TN tokens' inputs as vec4s, straight from the buffers, no shared memory and no barrier;
//     large TM x TN blocks make every load feed many FMAs.
//   BK > 0, staged (GPUs): the tile's weights are decoded once per BK-column slab into shared memory (transposed,
//     [k][row]) and its inputs staged beside them ([k][token]); two slab buffers, so the loads of slab s + 1 are in
//     flight while slab s is multiplied, one barrier per slab. Split-k (SPLIT > 1, gl_WorkGroupID.z = split) gives
//     under-filled GPUs more workgroups: each split writes raw partial sums to binding 5, and a second dispatch of
//     this shader with REDUCE sums them and applies the epilogue.
// A cooperative-matrix variant would replace the staged path's FMA loop (shared tiles as f16, coopMatLoad /
// coopMatMulAdd, accumulators stored to shared memory for the same epilogue); no device here offers it.
//
// Inputs past p.cols are zero (the padding weights a format decodes there do not count); rows past the chunk and
// tokens past the batch are computed from clamped indices and not stored, so the column loop has no branches.
//
// EXPERTS: the mixture-of-experts variant (prefill). Workgroup z is expert e; its "tokens" are the routing slots
// grouped under e in the routing table (binding 5, layout in MoeRouting.cs), so each expert multiplies its own
// slots as one tiled product: y[s, r] = W[e * p.expertRows + r, :] . x[s / p.tokens, :] (p.tokens: slots sharing
// one input row). Workgroup y tiles an expert's slots; tiles past its count, and experts in another chunk, exit.

#extension GL_EXT_control_flow_attributes : require

#include "weights.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WORKGROUP = 8;
layout(constant_id = 1) const uint WR = 8;          // invocations along rows (WT = WORKGROUP / WR along tokens)
layout(constant_id = 2) const uint TM = 16;         // rows per invocation, a multiple of 4
layout(constant_id = 3) const uint TN = 16;         // tokens per invocation, a multiple of 4
layout(constant_id = 4) const uint BK = 0;          // staged slab depth (a multiple of 8), 0: direct
layout(constant_id = 5) const bool VEC4 = true;     // p.cols % 4 == 0: input rows are read as vec4s
layout(constant_id = 6) const uint SPLIT = 1;       // staged split-k: column ranges, partial sums at binding 5
layout(constant_id = 7) const bool REDUCE = false;  // sum the SPLIT partial sums and apply the epilogue
layout(constant_id = 8) const bool OUT4 = false;    // direct: 4 outputs of a row block are one aligned vec4 (vec2 under SwiGLU)

const uint WT = WORKGROUP / WR;
const uint BM = WR * TM;
const uint BN = WT * TN;
const uint SLAB = BK == 0u ? 8u : BK;          // columns per step of the column loop
const uint PAD = 4u;                           // shared rows padded by a vec4 against bank conflicts
const uint WSTRIDE = BM + PAD;
const uint XSTRIDE = BN + PAD;
const uint WUNITS = BM * (SLAB / 8u);          // 8-weight decodes per slab
const uint XUNITS = BN * (SLAB / 4u);          // 4-input loads per slab
const uint WLOADS = (WUNITS + WORKGROUP - 1u) / WORKGROUP;
const uint XLOADS = (XUNITS + WORKGROUP - 1u) / WORKGROUP;
const uint WSHARED = BK == 0u ? 1u : 2u * BK * WSTRIDE;
const uint XSHARED = BK == 0u ? 1u : 2u * BK * XSTRIDE;

layout(std430, binding = 1) readonly buffer InputBuffer { float x[]; };
layout(std430, binding = 1) readonly buffer InputQuads { vec4 x4[]; };
layout(std430, binding = 2) buffer OutputBuffer { float y[]; };  // read too by FUSE_ACCUMULATE
layout(std430, binding = 2) buffer OutputQuads { vec4 y4[]; };
layout(std430, binding = 2) buffer OutputPairs { vec2 y2[]; };
layout(std430, binding = 3) readonly buffer BiasBuffer { float bias[]; };
layout(std430, binding = 3) readonly buffer BiasQuads { vec4 bias4[]; };
#ifdef EXPERTS
layout(std430, binding = 5) readonly buffer RoutingBuffer { float routing[]; };
#else
// Split-k: SPLIT x p.tokens x p.rows raw partial sums, then SPLIT x p.tokens partial sums of squares (FUSE_NORM).
layout(std430, binding = 5) buffer PartialBuffer { float partial[]; };
#endif
layout(std430, binding = 6) readonly buffer NormBuffer { float normWeight[]; };
layout(std430, binding = 6) readonly buffer NormQuads { vec4 normWeight4[]; };

// Staged slabs as floats: an invocation's 4-row (4-token) block is 4 adjacent floats at a 16-byte aligned index,
// which GPU compilers read as one 16-byte load. (Not vec4 arrays: a store to one component of a shared vec4 may be
// lowered to a read-modify-write of the whole vec4, racing with the invocations that store its other components.)
shared float tileW[WSHARED];  // staged: [buffer][k][row]; after the column loop, the squares' reduction
shared float tileX[XSHARED];  // staged: [buffer][k][token]
shared vec4 tileOut[BK == 0u ? WORKGROUP * TM * TN / 4u : 1u];  // direct: each invocation's scaled outputs [token][row block]

float acc[TM][TN];
float squares[TN];   // direct: sum of x^2 of this invocation's tokens
uint tr, tt;
uint rowBase, tokenBase, count, weightBase, rowsHere;
uint cols, paddedCols;
bool norm;
#ifdef EXPERTS
uint list;  // routing-table index of the first slot of this expert
uint input_row(uint i) { return uint(routing[list + i]) / p.tokens; }
uint output_row(uint i) { return uint(routing[list + i]); }
#else
uint input_row(uint i) { return i; }
#endif

uint tile_row(uint i) { return (i / 4u) * (4u * WR) + 4u * tr + i % 4u; }
uint tile_token(uint j) { return (j / 4u) * (4u * WT) + 4u * tt + j % 4u; }

// Inputs [c, c + 4) of the row starting at `base`, clamped into the row (the caller masks columns past p.cols).
vec4 load_x4(uint base, uint c)
{
    if (VEC4) return x4[(base + min(c, cols - 4u)) / 4u];
    return vec4(x[base + min(c, cols - 1u)], x[base + min(c + 1u, cols - 1u)],
                x[base + min(c + 2u, cols - 1u)], x[base + min(c + 3u, cols - 1u)]);
}

vec4 load_norm4(uint c)
{
    if (VEC4) return normWeight4[min(c, cols - 4u) / 4u];
    return vec4(normWeight[min(c, cols - 1u)], normWeight[min(c + 1u, cols - 1u)],
                normWeight[min(c + 2u, cols - 1u)], normWeight[min(c + 3u, cols - 1u)]);
}

// 1 for columns c..c+3 below p.cols, else 0.
vec4 column_mask(uint c) { return vec4(lessThan(uvec4(c) + uvec4(0u, 1u, 2u, 3u), uvec4(cols))); }

// ---- direct: every invocation loads its own operands ----
void direct_product()
{
    uint rowIndex[TM];
    uint xBase[TN];
    [[unroll]] for (uint i = 0; i < TM; i++) rowIndex[i] = weightBase + min(rowBase + tile_row(i), rowsHere - 1u);
    [[unroll]] for (uint j = 0; j < TN; j++)
    {
        xBase[j] = input_row(min(tokenBase + tile_token(j), count - 1u)) * cols;
        squares[j] = 0.0;
    }
    uint steps = (cols + 7u) / 8u;
    for (uint s = 0; s < steps; s++)
    {
        uint c = s * 8u;
        vec4 maskLo = column_mask(c), maskHi = column_mask(c + 4u);
        vec4 scaleLo = maskLo, scaleHi = maskHi;
        if (norm)
        {
            scaleLo *= load_norm4(c);
            scaleHi *= load_norm4(c + 4u);
        }
        vec4 xLo[TN], xHi[TN];
        [[unroll]] for (uint j = 0; j < TN; j++)
        {
            vec4 lo = load_x4(xBase[j], c), hi = load_x4(xBase[j], c + 4u);
            vec4 maskedLo = lo * maskLo, maskedHi = hi * maskHi;
            squares[j] += dot(maskedLo, maskedLo) + dot(maskedHi, maskedHi);
            xLo[j] = lo * scaleLo;
            xHi[j] = hi * scaleHi;
        }
        [[unroll]] for (uint i = 0; i < TM; i++)
        {
            vec4 wLo, wHi;
            load_weight8(rowIndex[i], c, wLo, wHi);
            [[unroll]] for (uint j = 0; j < TN; j++)
            {
                float a = acc[i][j];
                a = fma(wLo.x, xLo[j].x, a);
                a = fma(wLo.y, xLo[j].y, a);
                a = fma(wLo.z, xLo[j].z, a);
                a = fma(wLo.w, xLo[j].w, a);
                a = fma(wHi.x, xHi[j].x, a);
                a = fma(wHi.y, xHi[j].y, a);
                a = fma(wHi.z, xHi[j].z, a);
                a = fma(wHi.w, xHi[j].w, a);
                acc[i][j] = a;
            }
        }
    }
}

// ---- staged: slabs of decoded weights and inputs in shared memory, double-buffered ----
vec4 stageWLo[WLOADS], stageWHi[WLOADS];
vec4 stageX[XLOADS];
float stageSquares[XLOADS];  // per input unit of this invocation: sum of its x^2 over the columns read

// Global loads of the slab starting at column k0 into registers (decoded, masked, normalised).
void load_slab(uint k0, uint kEnd)
{
    uint tid = gl_LocalInvocationID.x;
    [[unroll]] for (uint n = 0; n < WLOADS; n++)
    {
        uint u = tid + n * WORKGROUP;
        uint row = u / (SLAB / 8u);
        uint c = k0 + (u % (SLAB / 8u)) * 8u;
        vec4 lo = vec4(0.0), hi = vec4(0.0);
        if (u < WUNITS && rowBase + row < rowsHere && c < kEnd)
            load_weight8(weightBase + rowBase + row, c, lo, hi);
        stageWLo[n] = lo;
        stageWHi[n] = hi;
    }
    [[unroll]] for (uint n = 0; n < XLOADS; n++)
    {
        uint u = tid + n * WORKGROUP;
        uint token = u / (SLAB / 4u);
        uint c = k0 + (u % (SLAB / 4u)) * 4u;
        vec4 value = vec4(0.0);
        if (u < XUNITS && c < kEnd)
        {
            value = load_x4(input_row(min(tokenBase + token, count - 1u)) * cols, c) * column_mask(c);
            stageSquares[n] += dot(value, value);
            if (norm) value *= load_norm4(c);
        }
        stageX[n] = value;
    }
}

void store_slab(uint slot)
{
    uint tid = gl_LocalInvocationID.x;
    [[unroll]] for (uint n = 0; n < WLOADS; n++)
    {
        uint u = tid + n * WORKGROUP;
        if (u >= WUNITS) continue;
        uint row = u / (SLAB / 8u);
        uint base = (slot * BK + (u % (SLAB / 8u)) * 8u) * WSTRIDE + row;
        [[unroll]] for (uint c = 0; c < 4u; c++)
        {
            tileW[base + c * WSTRIDE] = stageWLo[n][c];
            tileW[base + (c + 4u) * WSTRIDE] = stageWHi[n][c];
        }
    }
    [[unroll]] for (uint n = 0; n < XLOADS; n++)
    {
        uint u = tid + n * WORKGROUP;
        if (u >= XUNITS) continue;
        uint token = u / (SLAB / 4u);
        uint base = (slot * BK + (u % (SLAB / 4u)) * 4u) * XSTRIDE + token;
        [[unroll]] for (uint c = 0; c < 4u; c++) tileX[base + c * XSTRIDE] = stageX[n][c];
    }
}

void multiply_slab(uint slot)
{
    for (uint k = 0; k < BK; k++)
    {
        uint wBase = (slot * BK + k) * WSTRIDE + 4u * tr;
        uint xBase = (slot * BK + k) * XSTRIDE + 4u * tt;
        vec4 w[TM / 4u], v[TN / 4u];
        [[unroll]] for (uint b = 0; b < TM / 4u; b++)
        {
            uint o = wBase + b * 4u * WR;
            w[b] = vec4(tileW[o], tileW[o + 1u], tileW[o + 2u], tileW[o + 3u]);
        }
        [[unroll]] for (uint b = 0; b < TN / 4u; b++)
        {
            uint o = xBase + b * 4u * WT;
            v[b] = vec4(tileX[o], tileX[o + 1u], tileX[o + 2u], tileX[o + 3u]);
        }
        [[unroll]] for (uint i = 0; i < TM; i++)
            [[unroll]] for (uint j = 0; j < TN; j++)
                acc[i][j] = fma(w[i / 4u][i % 4u], v[j / 4u][j % 4u], acc[i][j]);
    }
}

void staged_product(uint kBegin, uint kEnd)
{
    [[unroll]] for (uint n = 0; n < XLOADS; n++) stageSquares[n] = 0.0;
    uint slabs = (kEnd - kBegin + BK - 1u) / BK;
    if (slabs > 0u)
    {
        load_slab(kBegin, kEnd);
        store_slab(0u);
    }
    barrier();
    for (uint s = 0; s < slabs; s++)
    {
        bool more = s + 1u < slabs;
        if (more) load_slab(kBegin + (s + 1u) * BK, kEnd);
        multiply_slab(s % 2u);
        if (more) store_slab((s + 1u) % 2u);
        barrier();
    }
    // Each token's sum of squares: its input units' partial sums, gathered in tileW (free after the last barrier).
    [[unroll]] for (uint n = 0; n < XLOADS; n++)
    {
        uint u = gl_LocalInvocationID.x + n * WORKGROUP;
        if (u < XUNITS) tileW[u] = stageSquares[n];
    }
    barrier();
    [[unroll]] for (uint j = 0; j < TN; j++)
    {
        float total = 0.0;
        for (uint q = 0; q < SLAB / 4u; q++) total += tileW[tile_token(j) * (SLAB / 4u) + q];
        squares[j] = total;
    }
}

// ---- epilogue, shared by the product and the split-k reduction ----
// Output of chunk row r (r even and v1 its up row's value under SwiGLU) for batch token t: bias, SwiGLU, accumulate.
void store_output(uint t, uint r, float v0, float v1)
{
    uint row = p.rowOffset + r;
    float value = v0 + (p.hasBias != 0u ? bias[row] : 0.0);
    uint outRow = row;
    if ((p.fusion & FUSE_SWIGLU) != 0u)
    {
        float up = v1 + (p.hasBias != 0u ? bias[row + 1u] : 0.0);
        value = value / (1.0 + exp(-value)) * up;
        outRow = row / 2u;
    }
    uint o = t * p.outStride + outRow;
    if ((p.fusion & FUSE_ACCUMULATE) != 0u) value += y[o];
    y[o] = value;
}

float norm_scale(float sumSquares) { return norm ? 1.0 / sqrt(sumSquares / float(cols) + p.normEps) : 1.0; }

#ifndef EXPERTS
void reduce_splits()
{
    uint r = gl_GlobalInvocationID.x;
    uint t = gl_GlobalInvocationID.y;
    bool swiglu = (p.fusion & FUSE_SWIGLU) != 0u;
    if (swiglu) r *= 2u;
    if (r >= p.rows || t >= p.tokens) return;
    float v0 = 0.0, v1 = 0.0, sumSquares = 0.0;
    for (uint z = 0; z < SPLIT; z++)
    {
        uint o = (z * p.tokens + t) * p.rows + r;
        v0 += partial[o];
        if (swiglu) v1 += partial[o + 1u];
        sumSquares += partial[SPLIT * p.tokens * p.rows + z * p.tokens + t];
    }
    float scale = norm_scale(sumSquares);
    store_output(t, r, v0 * scale, v1 * scale);
}
#endif

// Staged path (GPUs): each output straight from its register.
void register_epilogue()
{
    [[unroll]] for (uint j = 0; j < TN; j++)
    {
        uint t = tokenBase + tile_token(j);
        if (t >= count) continue;
        float scale = norm_scale(squares[j]);
        [[unroll]] for (uint i = 0; i < TM; i++)
        {
            uint r = rowBase + tile_row(i);
            if (r >= rowsHere) continue;
#ifdef EXPERTS
            y[output_row(t) * p.expertRows + r] = acc[i][j] * scale;
#else
            if ((p.fusion & FUSE_SWIGLU) != 0u)
            {
                if (i % 2u == 0u) store_output(t, r, acc[i][j] * scale, acc[i | 1u][j] * scale);
            }
            else
                store_output(t, r, acc[i][j] * scale, 0.0);
#endif
        }
    }
}

// Direct path (CPU devices): the scaled block goes through this invocation's part of shared memory, [token][4-row
// block] as vec4s, so that loops (not TM x TN unrolled copies of the epilogue's branches and stores, which a CPU
// compiler takes minutes over) write the outputs, 4 consecutive rows of a token at a time: one 16-byte store (two
// 8-byte outputs under SwiGLU) and one bias load per block, where OUT4 says the outputs are so aligned. Blocks that
// straddle the last row, and all blocks without OUT4, go one output at a time.
void scalar_block(uint base, uint b, uint r, uint valid)
{
    bool swiglu = (p.fusion & FUSE_SWIGLU) != 0u;
    for (uint j = 0; j < TN; j++)
    {
        uint t = tokenBase + tile_token(j);
        if (t >= count) continue;
        vec4 v = tileOut[base + j * (TM / 4u) + b];
        [[unroll]] for (uint c = 0; c < 4u; c++)
        {
            if (c >= valid) continue;
#ifdef EXPERTS
            y[output_row(t) * p.expertRows + r + c] = v[c];
#else
            if (!swiglu)
                store_output(t, r + c, v[c], 0.0);
            else if (c % 2u == 0u)
                store_output(t, r + c, v[c], v[c + 1u]);
#endif
        }
    }
}

void direct_epilogue()
{
    uint base = gl_LocalInvocationID.x * (TN * TM / 4u);
    [[unroll]] for (uint j = 0; j < TN; j++)
    {
        float scale = norm_scale(squares[j]);
        [[unroll]] for (uint b = 0; b < TM / 4u; b++)
            tileOut[base + j * (TM / 4u) + b] = vec4(acc[4u * b][j], acc[4u * b + 1u][j], acc[4u * b + 2u][j], acc[4u * b + 3u][j]) * scale;
    }
    if (!OUT4)
    {
        for (uint b = 0; b < TM / 4u; b++)
        {
            uint r = rowBase + tile_row(4u * b);
            if (r < rowsHere) scalar_block(base, b, r, min(rowsHere - r, 4u));
        }
        return;
    }
#ifndef EXPERTS
    bool swiglu = (p.fusion & FUSE_SWIGLU) != 0u;
    bool accumulate = (p.fusion & FUSE_ACCUMULATE) != 0u;
#endif
    for (uint b = 0; b < TM / 4u; b++)
    {
        uint r = rowBase + tile_row(4u * b);
        if (r + 4u > rowsHere) continue;
#ifndef EXPERTS
        uint row = p.rowOffset + r;
        vec4 rowBias = p.hasBias != 0u ? bias4[row / 4u] : vec4(0.0);
#endif
        for (uint j = 0; j < TN; j++)
        {
            uint t = tokenBase + tile_token(j);
            if (t >= count) continue;
            vec4 v = tileOut[base + j * (TM / 4u) + b];
#ifdef EXPERTS
            y4[(output_row(t) * p.expertRows + r) / 4u] = v;
#else
            v += rowBias;
            if (swiglu)
            {
                vec2 gate = v.xz;
                vec2 value = gate / (1.0 + exp(-gate)) * v.yw;
                uint o = (t * p.outStride + row / 2u) / 2u;
                if (accumulate) value += y2[o];
                y2[o] = value;
            }
            else
            {
                uint o = (t * p.outStride + row) / 4u;
                if (accumulate) v += y4[o];
                y4[o] = v;
            }
#endif
        }
    }
    // The block with the last row, where it is not whole: at most one per invocation (blocks are 4 rows from a multiple of 4).
    if (rowsHere % 4u != 0u && rowsHere > rowBase && rowsHere - rowBase <= BM)
    {
        uint block = (rowsHere - 1u - rowBase) / 4u;  // tile block index: b * WR + tr
        if (block % WR == tr) scalar_block(base, block / WR, rowBase + 4u * block, rowsHere % 4u);
    }
}

void main()
{
    cols = p.cols;
    paddedCols = p.paddedCols;
    norm = (p.fusion & FUSE_NORM) != 0u;
#ifndef EXPERTS
    if (REDUCE)
    {
        reduce_splits();
        return;
    }
#endif
    tr = gl_LocalInvocationID.x % WR;
    tt = gl_LocalInvocationID.x / WR;
    rowBase = gl_WorkGroupID.x * BM;
    tokenBase = gl_WorkGroupID.y * BN;
#ifdef EXPERTS
    uint slots = uint(routing[0]);
    uint expert = gl_WorkGroupID.z;
    uint groupStart = uint(routing[2 + 2 * slots + expert]);
    count = uint(routing[3 + 2 * slots + expert]) - groupStart;
    list = 3 + 2 * slots + uint(routing[1]) + groupStart;
    uint expertStart = expert * p.expertRows;
    if (tokenBase >= count || expertStart < p.rowOffset || expertStart >= p.rowOffset + p.rows) return;
    weightBase = expertStart - p.rowOffset;
    rowsHere = p.expertRows;
#else
    count = p.tokens;
    weightBase = 0;
    rowsHere = p.rows;
#endif

    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN; j++)
            acc[i][j] = 0.0;

    uint split = 0u;
    if (BK == 0u)
        direct_product();
    else
    {
        // Split z multiplies columns [z * chunk, (z + 1) * chunk), chunk a whole number of slabs.
        split = SPLIT > 1u ? gl_WorkGroupID.z : 0u;
        uint chunk = (paddedCols + SPLIT * BK - 1u) / (SPLIT * BK) * BK;
        uint kBegin = min(split * chunk, paddedCols);
        staged_product(kBegin, min(kBegin + chunk, paddedCols));
    }

#ifndef EXPERTS
    if (SPLIT > 1u)
    {
        [[unroll]] for (uint j = 0; j < TN; j++)
        {
            uint t = tokenBase + tile_token(j);
            if (t >= count) continue;
            [[unroll]] for (uint i = 0; i < TM; i++)
            {
                uint r = rowBase + tile_row(i);
                if (r < rowsHere) partial[(split * p.tokens + t) * p.rows + r] = acc[i][j];
            }
            if (gl_WorkGroupID.x == 0u && tr == 0u) partial[SPLIT * p.tokens * p.rows + split * p.tokens + t] = squares[j];
        }
        return;
    }
#endif

    if (BK == 0u)
        direct_epilogue();
    else
        register_epilogue();
}
