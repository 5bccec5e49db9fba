using System.Diagnostics;

namespace Engine.Cli;

/// <summary>
/// A progress bar on one line of standard error, redrawn in place at most ten times a second and erased on dispose.
/// Silent when standard error is redirected, so logs and captured output get no carriage-return noise.
/// </summary>
internal sealed class ProgressLine : IDisposable
{
    private const int BarWidth = 30;

    private readonly bool _enabled = !Console.IsErrorRedirected;
    private readonly Stopwatch _sinceDraw = Stopwatch.StartNew();
    private readonly Stopwatch _sinceStart = Stopwatch.StartNew();
    private bool _drawn;

    public void Update(double fraction, string text)
    {
        if (!_enabled || (_drawn && _sinceDraw.ElapsedMilliseconds < 100 && fraction < 1)) return;
        fraction = Math.Clamp(fraction, 0, 1);
        int filled = (int)Math.Round(fraction * BarWidth);
        string line = $"[{new string('#', filled)}{new string('.', BarWidth - filled)}] {fraction * 100,3:F0}%{Remaining(fraction)} {text}";
        int width = Math.Max(20, SafeWindowWidth() - 1);
        if (line.Length > width) line = line[..width];
        Console.Error.Write("\r" + line.PadRight(width));
        _drawn = true;
        _sinceDraw.Restart();
    }

    /// <summary>A synchronous <see cref="IProgress{T}"/> that draws each report (Progress&lt;T&gt; would post to the thread pool).</summary>
    public IProgress<T> Reporter<T>(Func<T, (double Fraction, string Text)> describe) => new Callback<T>(value =>
    {
        var (fraction, text) = describe(value);
        Update(fraction, text);
    });

    /// <summary>" ETA 1m05s" from the rate so far, once there is a rate to go by (a few seconds and percent in).</summary>
    private string Remaining(double fraction)
    {
        double elapsed = _sinceStart.Elapsed.TotalSeconds;
        if (fraction < 0.01 || fraction >= 1 || elapsed < 3) return "";
        var left = TimeSpan.FromSeconds(elapsed * (1 - fraction) / fraction);
        return left.TotalHours >= 1 ? $" ETA {(int)left.TotalHours}h{left.Minutes:D2}m" : $" ETA {left.Minutes}m{left.Seconds:D2}s";
    }

    public void Dispose()
    {
        if (_drawn) Console.Error.Write("\r" + new string(' ', Math.Max(20, SafeWindowWidth() - 1)) + "\r");
    }

    private static int SafeWindowWidth()
    {
        try
        {
            return Console.WindowWidth > 0 ? Console.WindowWidth : 80;
        }
        catch (IOException)
        {
            return 80;
        }
    }

    private sealed class Callback<T>(Action<T> action) : IProgress<T>
    {
        public void Report(T value) => action(value);
    }
}
