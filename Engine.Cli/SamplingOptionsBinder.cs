using System.CommandLine;
using Engine.Runtime.Sampling;

namespace Engine.Cli;

/// <summary>The sampling flags shared by generate and chat.</summary>
public sealed class SamplingOptionsBinder
{
    private static readonly SamplingOptions Defaults = new();

    private readonly Option<float> _temperature = new("--temperature", "--temp") { Description = "Sampling temperature; 0 is greedy", DefaultValueFactory = _ => Defaults.Temperature };
    private readonly Option<int> _topK = new("--top-k") { Description = "Keep the K most likely tokens (0: all)", DefaultValueFactory = _ => Defaults.TopK };
    private readonly Option<float> _topP = new("--top-p") { Description = "Nucleus sampling threshold (1: off)", DefaultValueFactory = _ => Defaults.TopP };
    private readonly Option<float> _minP = new("--min-p") { Description = "Drop tokens below this fraction of the best one's probability (0: off)", DefaultValueFactory = _ => Defaults.MinP };
    private readonly Option<float> _repeatPenalty = new("--repeat-penalty") { Description = "Penalty for recently seen tokens (1: off)", DefaultValueFactory = _ => Defaults.RepeatPenalty };
    private readonly Option<int> _repeatLastN = new("--repeat-last-n") { Description = "Tokens the repeat penalty looks back over", DefaultValueFactory = _ => Defaults.RepeatLastN };
    private readonly Option<int> _seed = new("--seed", "-s") { Description = "Random seed: the same seed gives the same output", DefaultValueFactory = _ => Defaults.Seed };

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { _temperature, _topK, _topP, _minP, _repeatPenalty, _repeatLastN, _seed })
            command.Options.Add(option);
    }

    public SamplingOptions Get(ParseResult parse)
    {
        var options = new SamplingOptions
        {
            Temperature = parse.GetValue(_temperature),
            TopK = parse.GetValue(_topK),
            TopP = parse.GetValue(_topP),
            MinP = parse.GetValue(_minP),
            RepeatPenalty = parse.GetValue(_repeatPenalty),
            RepeatLastN = parse.GetValue(_repeatLastN),
            Seed = parse.GetValue(_seed),
        };
        options.Validate();
        return options;
    }
}
