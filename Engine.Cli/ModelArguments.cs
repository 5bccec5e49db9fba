using System.CommandLine;
using Engine.Formats;
using Engine.Runtime;
using Engine.Runtime.Tokenization;

namespace Engine.Cli;

/// <summary>The model, backend, device, context and cache-type flags, and loading the model with its tokenizer.</summary>
public sealed class ModelArguments
{
    private readonly Option<string> _model;
    private readonly Option<BackendKind> _backend = CommonOptions.Backend();
    private readonly Option<int?> _device = CommonOptions.Device();
    private readonly Option<int?> _context = CommonOptions.Context();
    private readonly Option<int> _sefpBits = CommonOptions.SefpBits();
    private readonly Option<ElementType> _cacheType = CommonOptions.CacheType();

    /// <param name="defaultModel">Without -m, run the default model (tinyprose-14m) instead of failing.</param>
    public ModelArguments(bool defaultModel)
    {
        _model = CommonOptions.Model(required: !defaultModel);
    }

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { _model, _backend, _device, _context, _sefpBits, _cacheType }) command.Options.Add(option);
    }

    public string ModelPath(ParseResult parse) => parse.GetValue(_model) ?? DefaultModel.Find();

    public ModelOptions Options(ParseResult parse, int? contextOverride = null) => new()
    {
        Backend = parse.GetValue(_backend),
        DeviceIndex = parse.GetValue(_device),
        MaxContext = contextOverride ?? parse.GetValue(_context),
        SefpBits = parse.GetValue(_sefpBits),
        CacheType = parse.GetValue(_cacheType),
    };

    /// <summary>Loads the model and its tokenizer; a model without a tokenizer is an error for text commands.</summary>
    public (ILanguageModel Model, TextTokenizer Tokenizer) LoadWithTokenizer(ParseResult parse, int? contextOverride = null)
    {
        string path = ModelPath(parse);
        using var file = ModelFile.Open(path);
        var tokenizer = ModelLoader.LoadTokenizer(file)
            ?? throw new InvalidDataException($"{path} has no tokenizer (tokenizer.model or tokenizer.json): text commands need one; 'engine logits' works on token ids");
        var model = ModelLoader.Load(file, Options(parse, contextOverride));
        return (model, tokenizer);
    }
}
