using Xunit;

namespace Engine.Tests.Formats;

/// <summary>Asserts that a loader fails on bad input without first allocating what the input claims to need.</summary>
internal static class Allocation
{
    public const long Budget = 4 << 20;

    public static TException Throws<TException>(Action action, long budget = Budget) where TException : Exception
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        var exception = Assert.Throws<TException>(action);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < budget, $"allocated {allocated} bytes before failing (budget {budget}): {exception.Message}");
        return exception;
    }
}
