using System.CommandLine;
using Engine.Cli.Commands;

namespace Engine.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("engine: a Vulkan LLM inference engine with in-place decoding of low-bit weights")
        {
            ChatCommand.Create(),
            GenerateCommand.Create(),
            PerplexityCommand.Create(),
            LogitsCommand.Create(),
            BenchCommand.Create(),
            QuantizeCommand.Create(),
            InspectCommand.Create(),
            DevicesCommand.Create(),
        };
        root.Options.Add(CommonOptions.Verbose);
        return CommandRunner.Run(root, args);
    }
}
