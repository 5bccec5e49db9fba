namespace Engine.Formats;

/// <summary>
/// Storage type of a weight tensor. The numbers are on-disk identifiers (the .epack tensor directory
/// stores them): never renumber, never reuse a retired value.
/// </summary>
public enum WeightType : ushort
{
    F32 = 0,
    F16 = 1,
    BF16 = 2,
}
