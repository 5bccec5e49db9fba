using Engine.Formats;
using Engine.Formats.Epack;
using Engine.Runtime.Tokenization;

namespace Engine.Quantizers;

/// <summary>
/// What an .epack written from a model carries over from it: the config texts, the RoPE layout and the tokenizer
/// (from the source's folder, or from the source .epack's metadata), and the files they and the weights came from.
/// </summary>
internal static class SourceMetadata
{
    public const string TokenizerConfigFileName = "tokenizer_config.json";
    public const string ChatTemplateFileName = "chat_template.jinja";

    public static (EpackMetadata Metadata, IReadOnlyList<string> Files) Read(ModelFile source)
    {
        switch (source.Tensors)
        {
            case EpackFile epack:
                return (epack.Metadata with { Recipe = null, Provenance = null }, [Path.GetFullPath(epack.Path)]);
            case Llama2cFile llama2c:
                // llama2.c has no config.json and no tokenizer in a form the engine reads; the header is the config.
                return (new EpackMetadata
                {
                    Architecture = source.Config.Architecture,
                    ConfigJson = SynthesizedConfig.ConfigJson(source.Config),
                    RopeLayout = source.Config.RopeLayout,
                }, [Path.GetFullPath(llama2c.Path)]);
        }

        string fullPath = Path.GetFullPath(source.Path);
        string folder = Directory.Exists(fullPath) ? fullPath : Path.GetDirectoryName(fullPath)!;
        var files = new List<string>();
        string? ReadText(string name)
        {
            string path = Path.Combine(folder, name);
            if (!File.Exists(path)) return null;
            files.Add(path);
            return File.ReadAllText(path);
        }

        var metadata = new EpackMetadata
        {
            Architecture = source.Config.Architecture,
            ConfigJson = ReadText(HfConfigReader.ConfigFileName)
                ?? throw new FileNotFoundException($"{folder} has no {HfConfigReader.ConfigFileName}"),
            GenerationConfigJson = ReadText(HfConfigReader.GenerationConfigFileName),
            RopeLayout = source.Config.RopeLayout,
        };
        if (TextTokenizer.FindModelFile(folder) is var (kind, tokenizerPath))
        {
            files.Add(tokenizerPath);
            metadata = metadata with
            {
                Tokenizer = new EpackTokenizer(kind, File.ReadAllBytes(tokenizerPath), ReadText(TokenizerConfigFileName), ReadText(ChatTemplateFileName)),
            };
        }
        string[] weightFiles = source.Tensors switch
        {
            ShardedSafetensors sharded => [sharded.Path, .. sharded.Shards.Select(s => s.Path)],
            TensorFile single => [single.Path],
            _ => [],
        };
        files.AddRange(weightFiles.Select(Path.GetFullPath));
        return (metadata, files);
    }
}
