namespace Engine.Runtime.Cpu;

/// <summary>The element-wise functions of <see cref="Activation"/> in float64, as the shaders compute them.</summary>
public static class Activations
{
    public static double Apply(Activation function, double x) => function switch
    {
        Activation.Silu => x * Sigmoid(x),
        Activation.Gelu => 0.5 * x * (1 + Erf(x / Math.Sqrt(2))),
        Activation.GeluTanh => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))),
        Activation.QuickGelu => x * Sigmoid(1.702 * x),
        Activation.Sigmoid => Sigmoid(x),
        Activation.Softplus => x > 20 ? x : Math.Log(1 + Math.Exp(x)),
        Activation.ReluSquared => x > 0 ? x * x : 0,
        Activation.Tanh => Math.Tanh(x),
        Activation.Exp => Math.Exp(x),
        _ => throw new ArgumentOutOfRangeException(nameof(function), function, "unknown activation"),
    };

    public static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    /// <summary>
    /// The error function by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7): .NET has none, and the GELU
    /// shader uses the same formula, so both backends agree far inside float32 model tolerances.
    /// </summary>
    public static double Erf(double x)
    {
        double t = 1 / (1 + 0.3275911 * Math.Abs(x));
        double poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
        double magnitude = 1 - poly * Math.Exp(-x * x);
        return x < 0 ? -magnitude : magnitude;
    }
}
