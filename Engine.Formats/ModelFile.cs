namespace Engine.Formats;

/// <summary>
/// A model opened from a path: its hyper-parameters and its tensors. Accepts a Hugging Face folder
/// (<c>config.json</c> with <c>model.safetensors</c> or <c>model.safetensors.index.json</c>), a single
/// <c>.safetensors</c> file or a <c>.safetensors.index.json</c> inside such a folder, a packed <c>.epack</c> file (config
/// from its metadata), or a legacy llama2.c <c>.bin</c>.
/// </summary>
public sealed class ModelFile : IDisposable
{
    public const string SingleWeightsFileName = "model.safetensors";

    private ModelFile(string path, ModelConfig config, ITensorSource tensors)
    {
        Path = path;
        Config = config;
        Tensors = tensors;
    }

    /// <summary>The path the model was opened from.</summary>
    public string Path { get; }

    public ModelConfig Config { get; }

    public ITensorSource Tensors { get; }

    public static ModelFile Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path))
            return OpenFolder(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"model path '{path}' does not exist", path);

        if (path.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
        {
            var llama2c = Llama2cFile.Open(path);
            return new ModelFile(path, llama2c.Config, llama2c);
        }
        if (path.EndsWith(Epack.EpackFile.Extension, StringComparison.OrdinalIgnoreCase))
        {
            var epack = Epack.EpackFile.Open(path);
            return new ModelFile(path, epack.Config, epack);
        }
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            return WithFolderConfig(path, () => SafetensorsFile.Open(path));
        if (path.EndsWith(".safetensors.index.json", StringComparison.OrdinalIgnoreCase))
            return WithFolderConfig(path, () => ShardedSafetensors.Open(path));

        throw new InvalidDataException(
            $"unsupported model path '{path}' (expected a Hugging Face folder, a llama2.c .bin, an .epack file, or a .safetensors file beside its config.json)");
    }

    public void Dispose() => Tensors.Dispose();

    private static ModelFile OpenFolder(string folder)
    {
        string single = System.IO.Path.Combine(folder, SingleWeightsFileName);
        string index = System.IO.Path.Combine(folder, ShardedSafetensors.IndexFileName);
        bool hasSingle = File.Exists(single), hasIndex = File.Exists(index);
        if (!hasSingle && !hasIndex)
        {
            if (!File.Exists(System.IO.Path.Combine(folder, HfConfigReader.ConfigFileName)))
                throw new InvalidDataException(
                    $"unsupported model path '{folder}': the folder has neither config.json nor {SingleWeightsFileName} (expected a Hugging Face folder, a llama2.c .bin, or a .safetensors file)");
            throw new InvalidDataException(
                $"model folder '{folder}' has neither {SingleWeightsFileName} nor {ShardedSafetensors.IndexFileName}");
        }
        var config = HfConfigReader.Read(folder);
        ITensorSource tensors = hasSingle ? SafetensorsFile.Open(single) : ShardedSafetensors.Open(index);
        return new ModelFile(folder, config, tensors);
    }

    private static ModelFile WithFolderConfig(string path, Func<ITensorSource> open)
    {
        string folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        var config = HfConfigReader.Read(folder);
        return new ModelFile(path, config, open());
    }
}
