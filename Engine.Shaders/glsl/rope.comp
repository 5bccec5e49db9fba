#version 450
// Rotary position embedding, in place, on x[tokens][heads][headDim]; token t sits at position pos0 + t.
// Angles come from a table cos/sin[position][headDim/2] computed once on the host in float64, because
// GPU sin/cos lose accuracy on large arguments. ROTATE_HALF pairs (i, i + headDim/2) as Hugging Face does;
// otherwise (2i, 2i + 1) as llama2.c and Meta's original code do.
// POSITIONS: each token has three positions (positions[t][3], exact integers stored as floats) and rotary pair i
// takes the first while i < section0, the second while i < section0 + section1, then the third: multimodal RoPE
// (Qwen2-VL's temporal/height/width) and 2-D vision RoPE (section0 = 0).

layout(local_size_x = 64) in;

layout(std430, binding = 0) buffer Data { float x[]; };
layout(std430, binding = 1) readonly buffer Table { vec2 cosSin[]; };
#ifdef POSITIONS
layout(std430, binding = 2) readonly buffer Positions { float positions[]; };
#endif

layout(push_constant) uniform Push
{
    uint tokens;
    uint heads;
    uint headDim;
    uint pos0;
    uint rotateHalf;
#ifdef POSITIONS
    uint section0;
    uint section1;
#endif
} p;

void main()
{
    uint half_dim = p.headDim / 2;
    uint index = gl_GlobalInvocationID.x;
    if (index >= p.tokens * p.heads * half_dim) return;
    uint i = index % half_dim;
    uint head = (index / half_dim) % p.heads;
    uint t = index / (half_dim * p.heads);
#ifdef POSITIONS
    uint component = i < p.section0 ? 0 : i < p.section0 + p.section1 ? 1 : 2;
    uint position = uint(positions[t * 3 + component]);
#else
    uint position = p.pos0 + t;
#endif
    vec2 cs = cosSin[position * half_dim + i];
    uint base = (t * p.heads + head) * p.headDim;
    uint a = p.rotateHalf != 0 ? base + i : base + 2 * i;
    uint b = p.rotateHalf != 0 ? base + i + half_dim : base + 2 * i + 1;
    float xa = x[a];
    float xb = x[b];
    x[a] = xa * cs.x - xb * cs.y;
    x[b] = xb * cs.x + xa * cs.y;
}
