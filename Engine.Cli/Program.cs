using System.CommandLine;
using Engine.Cli.Commands;

namespace Engine.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("engine: a Vulkan LLM inference engine with in-place decoding of low-bit weights")
        {
            DevicesCommand.Create(),
            LogitsCommand.Create(),
            BenchCommand.Create(),
        };
        root.Options.Add(CommonOptions.Verbose);
        return CommandRunner.Run(root, args);
    }
}
