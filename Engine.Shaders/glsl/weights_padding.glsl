// For formats whose padding (the weights past p.cols, up to p.paddedCols) does not decode to zero: the mat-vec
// multiplies the weights of a row's last 8-weight chunk past p.cols by a clamped input, so they must read as zero.
// Only the chunk holding the row's end takes the branch.
void zero_past_cols(uint col, inout vec4 lo, inout vec4 hi)
{
    if (col + 8u > p.cols)
    {
        uvec4 c = uvec4(col) + uvec4(0u, 1u, 2u, 3u);
        lo = mix(vec4(0.0), lo, lessThan(c, uvec4(p.cols)));
        hi = mix(vec4(0.0), hi, lessThan(c + 4u, uvec4(p.cols)));
    }
}
