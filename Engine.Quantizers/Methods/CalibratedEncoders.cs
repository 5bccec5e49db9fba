using Engine.Formats;
using Engine.Formats.Weights;

namespace Engine.Quantizers.Methods;

/// <summary>The calibrated methods each weight format has, by <c>--method</c> name.</summary>
public static class CalibratedEncoders
{
    /// <summary>The method's encoder for the format, or null when the format does not have it.</summary>
    public static ICalibratedEncoder? Find(WeightFormat format, string method, GptqOptions? gptq = null, SaesOptions? saes = null) =>
        (format, method.ToLowerInvariant()) switch
        {
            (GroupIntFormat groupInt, "gptq") => new GroupIntGptq(groupInt, gptq ?? new GptqOptions()),
            (PcdvqFormat, "pcdvq") => new PcdvqGptq(gptq ?? new GptqOptions()),
            (LowRankFormat, "saes-svd") => new SaesSvd(saes ?? new SaesOptions()),
            _ => null,
        };

    /// <summary>The calibrated methods of a format, for messages.</summary>
    public static IEnumerable<string> MethodsOf(WeightFormat format) =>
        ModelQuantizer.KnownMethods.Where(m => Find(format, m) is not null);
}
