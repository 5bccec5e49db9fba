using System.CommandLine;

namespace Engine.Cli;

/// <summary>
/// Parses, runs, and turns every failure into one line on standard error with a non-zero exit code:
/// 2 for a bad command line, 1 for a failure while running. --verbose adds the stack trace.
/// </summary>
public static class CommandRunner
{
    public static int Run(RootCommand root, string[] args)
    {
        var result = root.Parse(args);
        bool wantsHelp = args.Any(a => a is "-h" or "--help" or "-?");
        if (result.Errors.Count > 0 && !wantsHelp)
        {
            string command = result.CommandResult.Command == root ? "engine" : $"engine {result.CommandResult.Command.Name}";
            Console.Error.WriteLine($"engine: {string.Join("; ", result.Errors.Select(e => e.Message.TrimEnd('.')))} (see '{command} --help')");
            return 2;
        }
        try
        {
            return result.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            var inner = e is AggregateException { InnerExceptions.Count: 1 } aggregate ? aggregate.InnerExceptions[0] : e;
            Console.Error.WriteLine($"engine: {inner.Message}");
            if (result.GetValue(CommonOptions.Verbose)) Console.Error.WriteLine(inner);
            return 1;
        }
    }
}
